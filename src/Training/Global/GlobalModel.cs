using System.Collections.Concurrent;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Series;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers.LightGbm;

namespace Forecaster.Training.Global;

/// <summary>One prepared series for the fleet-wide model: cleaned values on its grid, and how many of them training may read.</summary>
public sealed record GlobalSeries(double[] Values, TimeGrid Grid, int TrainEnd);

/// <summary>
/// The fleet-wide gradient-boosted model (ML.NET's LightGBM regression; Ke et al., "LightGBM", NeurIPS 2017): one model for
/// every series, trained once per run on rows of <see cref="GlobalFeatures"/> sampled across the fleet, forecasting any
/// series from its own recent past. Thread-safe: predictions draw on a pool of prediction engines.
/// </summary>
public sealed class GlobalModel
{
    /// <summary>One training or prediction row.</summary>
    private sealed class Row
    {
        public float Label { get; set; }

        [VectorType(GlobalFeatures.Count)]
        public float[] Features { get; set; } = new float[GlobalFeatures.Count];
    }

    private sealed class Prediction
    {
        public float Score { get; set; }
    }

    private readonly MLContext _ml;
    private readonly ITransformer _model;
    private readonly DataViewSchema _schema;
    private readonly ConcurrentBag<PredictionEngine<Row, Prediction>> _engines = [];

    private GlobalModel(MLContext ml, ITransformer model, DataViewSchema schema, string version, double[] residualRms, int rows, int series)
    {
        (_ml, _model, _schema) = (ml, model, schema);
        (Version, ResidualRms, Rows, Series) = (version, residualRms, rows, series);
    }

    /// <summary>The version each series' model names (the artifact's file name without extension).</summary>
    public string Version { get; }

    /// <summary>In-sample root mean square of the normalised residual by horizon step: the model's own standard error per unit of scale.</summary>
    public double[] ResidualRms { get; }

    /// <summary>Rows trained on.</summary>
    public int Rows { get; }

    /// <summary>Series trained on.</summary>
    public int Series { get; }

    /// <summary>The longest horizon it was trained for.</summary>
    public int Horizon => ResidualRms.Length;

    /// <summary>
    /// Trains on the first <see cref="GlobalSeries.TrainEnd"/> points of each series (never more: the caller's no-peeking cut),
    /// for horizons 1..<paramref name="horizon"/>. Null when the fleet gives fewer than a few hundred rows.
    /// </summary>
    public static GlobalModel? Train(IReadOnlyList<GlobalSeries> fleet, int horizon, string version, GlobalModelOptions? options = null)
    {
        options ??= new GlobalModelOptions();
        var random = new Random(options.Seed);
        int every = Math.Max(1, (int)Math.Ceiling(fleet.Count / (double)options.MaxSeries));
        var chosen = fleet.Where((_, i) => i % every == 0).Where(s => s.TrainEnd > options.MinHistory + 1).ToArray();
        long candidates = chosen.Sum(s => (long)(s.TrainEnd - options.MinHistory) * Math.Min(horizon, s.TrainEnd - options.MinHistory));
        // Origins every `stride` steps (the phase varying per series), then each (origin, horizon) kept with probability p.
        int stride = (int)Math.Max(1, candidates / (8L * options.MaxRows));
        double p = Math.Min(1, options.MaxRows / (double)Math.Max(1, candidates / stride));

        var rows = new List<Row>(Math.Min(options.MaxRows + 1024, (int)Math.Min(int.MaxValue, (candidates / stride) + 1)));
        for (int i = 0; i < chosen.Length; i++)
        {
            var s = chosen[i];
            var x = s.Values.AsSpan(0, s.TrainEnd);
            for (int o = options.MinHistory + (i % stride); o < s.TrainEnd; o += stride)
            {
                var normal = GlobalFeatures.Normalisation(x, o);
                for (int h = 1; h <= horizon && o + h - 1 < s.TrainEnd; h++)
                {
                    if (p < 1 && random.NextDouble() >= p)
                    {
                        continue;
                    }
                    var row = new Row { Label = normal.Apply(x[o + h - 1]) };
                    GlobalFeatures.Write(x, o, h, normal, s.Grid, null, row.Features);
                    rows.Add(row);
                }
            }
        }
        if (rows.Count < 200)
        {
            return null;
        }

        var ml = new MLContext(options.Seed);
        var data = ml.Data.LoadFromEnumerable(rows);
        var trainer = ml.Regression.Trainers.LightGbm(new LightGbmRegressionTrainer.Options
        {
            LabelColumnName = nameof(Row.Label),
            FeatureColumnName = nameof(Row.Features),
            NumberOfIterations = options.Iterations,
            NumberOfLeaves = options.Leaves,
            LearningRate = options.LearningRate,
            MinimumExampleCountPerLeaf = options.MinRowsPerLeaf,
            NumberOfThreads = Math.Max(1, options.Threads),
            Seed = options.Seed,
            Silent = true,
            Verbose = false,
        });
        var model = trainer.Fit(data);
        var global = new GlobalModel(ml, model, data.Schema, version, new double[horizon], rows.Count, chosen.Length);

        // The model's own spread per horizon step, from a sample of its training rows (optimistic; calibration widens it from the backtest).
        var sums = new double[horizon];
        var counts = new int[horizon];
        var engine = global.Rent();
        for (int r = 0; r < rows.Count; r += Math.Max(1, rows.Count / 20_000))
        {
            int h = (int)rows[r].Features[0] - 1;
            double e = rows[r].Label - engine.Predict(rows[r]).Score;
            sums[h] += e * e;
            counts[h]++;
        }
        global.Return(engine);
        double fallback = Math.Sqrt(sums.Sum() / Math.Max(1, counts.Sum()));
        for (int h = 0; h < horizon; h++)
        {
            global.ResidualRms[h] = counts[h] > 0 ? Math.Sqrt(sums[h] / counts[h]) : fallback;
        }
        return global;
    }

    /// <summary>
    /// Forecasts the <paramref name="horizon"/> steps after the first <paramref name="origin"/> points of <paramref name="x"/>
    /// (nothing at or after the origin is read), with standard errors from the training residuals.
    /// </summary>
    public ModelForecast Forecast(ReadOnlySpan<double> x, int origin, TimeGrid grid, int horizon, DateOnly[]? events = null)
    {
        x = x[..origin];
        var normal = GlobalFeatures.Normalisation(x, origin);
        var point = new double[horizon];
        var se = new double[horizon];
        var engine = Rent();
        try
        {
            var row = new Row();
            for (int h = 1; h <= horizon; h++)
            {
                // Beyond the trained horizon the features of the last trained step, one day earlier per day past it.
                int hh = h <= Horizon ? h : Horizon - 23 + ((h - Horizon - 1) % 24);
                GlobalFeatures.Write(x, origin, h, normal, grid, events, row.Features);
                row.Features[0] = hh;
                point[h - 1] = normal.Invert(engine.Predict(row).Score);
                se[h - 1] = ResidualRms[Math.Min(h, Horizon) - 1] * normal.Scale * Math.Sqrt(Math.Max(1.0, (double)h / Horizon));
            }
        }
        finally
        {
            Return(engine);
        }
        return new ModelForecast(point, se);
    }

    /// <summary>Saves the ML.NET model (a zip) to <paramref name="path"/>, through a temporary name so no reader sees half a file.</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // Every instance that trains a shard of the run trains and saves the run's fleet model; a temp name of its own keeps
        // two instances sharing a models volume from writing one temp file at once, and the rename makes either whole copy win.
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        _ml.Model.Save(_model, _schema, temp);
        File.Move(temp, path, overwrite: true);
    }

    private PredictionEngine<Row, Prediction> Rent() =>
        _engines.TryTake(out var engine) ? engine : _ml.Model.CreatePredictionEngine<Row, Prediction>(_model);

    private void Return(PredictionEngine<Row, Prediction> engine) => _engines.Add(engine);
}
