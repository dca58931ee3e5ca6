using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    private readonly FlatTrees? _trees;

    private GlobalModel(MLContext ml, ITransformer model, DataViewSchema schema, string version, double[] residualRms, int rows, int series)
    {
        (_ml, _model, _schema) = (ml, model, schema);
        (Version, ResidualRms, Rows, Series) = (version, residualRms, rows, series);
        _trees = FlatTrees.From(model);
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
                float[]? atOrigin = null;
                for (int h = 1; h <= horizon && o + h - 1 < s.TrainEnd; h++)
                {
                    if (p < 1 && random.NextDouble() >= p)
                    {
                        continue;
                    }
                    if (atOrigin is null)
                    {
                        atOrigin = new float[GlobalFeatures.Count];
                        GlobalFeatures.WriteOrigin(x, o, normal, atOrigin);
                    }
                    var row = new Row { Label = normal.Apply(x[o + h - 1]) };
                    atOrigin.CopyTo(row.Features, 0);
                    GlobalFeatures.WriteStep(x, o, h, normal, s.Grid, null, row.Features);
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
        for (int r = 0; r < rows.Count; r += Math.Max(1, rows.Count / 20_000))
        {
            int h = (int)rows[r].Features[0] - 1;
            double e = rows[r].Label - global.Score(rows[r]);
            sums[h] += e * e;
            counts[h]++;
        }
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
        int count = GlobalFeatures.Count;
        // Every step's row first (the origin's features written once, copied into each), then all of them scored together.
        var rows = new float[horizon * count];
        GlobalFeatures.WriteOrigin(x, origin, normal, rows.AsSpan(0, count));
        for (int h = 1; h <= horizon; h++)
        {
            var row = rows.AsSpan((h - 1) * count, count);
            if (h > 1)
            {
                rows.AsSpan(0, count).CopyTo(row);
            }
            GlobalFeatures.WriteStep(x, origin, h, normal, grid, events, row);
            // Beyond the trained horizon the features of the last trained step, one day earlier per day past it.
            row[0] = h <= Horizon ? h : Horizon - 23 + ((h - Horizon - 1) % 24);
        }
        var scores = Score(rows, horizon);
        var point = new double[horizon];
        var se = new double[horizon];
        for (int h = 1; h <= horizon; h++)
        {
            point[h - 1] = normal.Invert(scores[h - 1]);
            se[h - 1] = ResidualRms[Math.Min(h, Horizon) - 1] * normal.Scale * Math.Sqrt(Math.Max(1.0, (double)h / Horizon));
        }
        return new ModelForecast(point, se);
    }

    /// <summary>The ML.NET model as the bytes of its zip, for <see cref="Load"/>.</summary>
    public byte[] ToZip()
    {
        using var stream = new MemoryStream();
        _ml.Model.Save(_model, _schema, stream);
        return stream.ToArray();
    }

    /// <summary>
    /// A model saved by <see cref="ToZip"/>, with what the zip does not hold (version, residual spread, sizes): it forecasts
    /// exactly as the model that was saved.
    /// </summary>
    public static GlobalModel Load(byte[] zip, string version, double[] residualRms, int rows, int series, GlobalModelOptions? options = null)
    {
        var ml = new MLContext((options ?? new GlobalModelOptions()).Seed);
        using var stream = new MemoryStream(zip, writable: false);
        var model = ml.Model.Load(stream, out var schema);
        return new GlobalModel(ml, model, schema, version, residualRms, rows, series);
    }

    /// <summary>Saves the ML.NET model (a zip) to <paramref name="path"/>, through a temporary name so no reader sees half a file.</summary>
    public void Save(string path) => SaveZip(ToZip(), path);

    /// <summary>Writes <paramref name="zip"/> to <paramref name="path"/> through a temporary name of its own, so no reader sees half a file.</summary>
    public static void SaveZip(byte[] zip, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // A temp name of its own keeps two instances sharing a models volume from writing one temp file at once.
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllBytes(temp, zip);
        File.Move(temp, path, overwrite: true);
    }

    // The model's score for a row: from the flattened trees when every feature is known, else (or should the model not be a
    // plain numeric tree ensemble) through a prediction engine, which applies each split's default direction to a missing feature.
    private float Score(Row row) => Score(row.Features, 1)[0];

    // The scores of `count` rows of GlobalFeatures.Count features each, laid end to end in `rows` (internal for tests).
    internal float[] Score(float[] rows, int count)
    {
        int width = GlobalFeatures.Count;
        var scores = new float[count];
        var known = new bool[count];
        for (int r = 0; r < count; r++)
        {
            known[r] = _trees is not null && !HasMissing(rows.AsSpan(r * width, width));
        }
        if (_trees is { } trees)
        {
            var sums = new double[count];
            trees.Score(rows, width, known, sums);
            for (int r = 0; r < count; r++)
            {
                scores[r] = (float)sums[r];
            }
        }
        for (int r = 0; r < count; r++)
        {
            if (!known[r])
            {
                var engine = Rent();
                try
                {
                    scores[r] = engine.Predict(new Row { Features = rows.AsSpan(r * width, width).ToArray() }).Score;
                }
                finally
                {
                    Return(engine);
                }
            }
        }
        return scores;
    }

    /// <summary>A row's score through ML.NET's prediction engine, and through the flattened trees (null when the model has none); for tests.</summary>
    internal (float Engine, float? Flat) ScoreBothWays(float[] features)
    {
        var row = new Row { Features = features };
        var engine = Rent();
        try
        {
            float? flat = null;
            if (_trees is { } trees)
            {
                var sums = new double[1];
                trees.Score(features, features.Length, [true], sums);
                flat = (float)sums[0];
            }
            return (engine.Predict(row).Score, flat);
        }
        finally
        {
            Return(engine);
        }
    }

    private static bool HasMissing(ReadOnlySpan<float> features)
    {
        foreach (float f in features)
        {
            if (float.IsNaN(f))
            {
                return true;
            }
        }
        return false;
    }

    private PredictionEngine<Row, Prediction> Rent() =>
        _engines.TryTake(out var engine) ? engine : _ml.Model.CreatePredictionEngine<Row, Prediction>(_model);

    private void Return(PredictionEngine<Row, Prediction> engine) => _engines.Add(engine);

    /// <summary>
    /// The trained trees as flat arrays, scored as ML.NET scores a dense row of a LightGBM regression model: each tree from its
    /// root, left when the feature is at most the split's threshold (float comparison), the reached leaves' values summed in
    /// double in tree order and the sum rounded to float (<c>TreeEnsembleModelParameters.Map</c> and
    /// <c>InternalRegressionTree.GetLeaf</c> in dotnet/machinelearning). Valid for rows without a missing feature only:
    /// ML.NET sends a NaN down each split's default side, which its public API does not expose.
    /// A child index below zero is a leaf, ~index into the leaf values.
    /// </summary>
    private sealed class FlatTrees
    {
        // A node: the feature it tests, the threshold, and its two children. One 16-byte record per node, so each step of a
        // walk touches one cache line instead of three arrays. Leaves come after the splits (from _firstLeaf on), one node
        // each whose children are itself: a walk that has reached its leaf stays there while the others of its group go on,
        // without a test per walk and step.
        [StructLayout(LayoutKind.Sequential)]
        private readonly struct Node(int feature, float threshold, int left, int right)
        {
            public readonly int Feature = feature;
            public readonly float Threshold = threshold;
            public readonly int Left = left;
            public readonly int Right = right;
        }

        private readonly int[] _roots;
        private readonly Node[] _nodes;
        private readonly double[] _leaves;
        private readonly int _firstLeaf;
        private readonly int _maxFeature;

        public FlatTrees(int[] roots, int[] features, float[] thresholds, int[] children, double[] leaves)
        {
            _firstLeaf = features.Length;
            int Index(int child) => child >= 0 ? child : _firstLeaf + ~child;
            _nodes = new Node[features.Length + leaves.Length];
            for (int n = 0; n < features.Length; n++)
            {
                _nodes[n] = new Node(features[n], thresholds[n], Index(children[2 * n]), Index(children[(2 * n) + 1]));
            }
            for (int k = 0; k < leaves.Length; k++)
            {
                _nodes[_firstLeaf + k] = new Node(0, 0f, _firstLeaf + k, _firstLeaf + k);
            }
            _maxFeature = features.Length == 0 ? 0 : features.Max();
            _roots = [.. roots.Select(Index)];
            _leaves = leaves;
        }

        public void Score(ReadOnlySpan<float> rows, int width, ReadOnlySpan<bool> use, Span<double> sums)
        {
            // The rows that are scored here, by index; eight of them walk each tree side by side (issue 16): one row's walk is a
            // chain of dependent loads (node, feature, child), eight independent chains keep the core busy.
            // Each row still adds its leaves in tree order, so every sum is the same as one row at a time.
            Span<int> scored = sums.Length <= 256 ? stackalloc int[sums.Length] : new int[sums.Length];
            int count = 0;
            for (int r = 0; r < sums.Length; r++)
            {
                if (use[r])
                {
                    scored[count++] = r;
                }
            }
            scored = scored[..count];
            // Every index below stays in range by construction: the nodes' children and the roots are nodes, the features are
            // below the width (checked), and the rows scored are within `rows` (checked).
            if (width <= _maxFeature || rows.Length < sums.Length * width || use.Length < sums.Length)
            {
                throw new ArgumentException("The rows are narrower than the trees' features or fewer than the sums.");
            }
            ref var nodes = ref MemoryMarshal.GetArrayDataReference(_nodes);
            ref float rowsRef = ref MemoryMarshal.GetReference(rows);
            int firstLeaf = _firstLeaf;
            for (int t = 0; t < _roots.Length; t++)
            {
                int root = _roots[t];
                int k = 0;
                for (; k + 8 <= count; k += 8)
                {
                    int r0 = scored[k], r1 = scored[k + 1], r2 = scored[k + 2], r3 = scored[k + 3];
                    int r4 = scored[k + 4], r5 = scored[k + 5], r6 = scored[k + 6], r7 = scored[k + 7];
                    ref float row0 = ref Unsafe.Add(ref rowsRef, r0 * width);
                    ref float row1 = ref Unsafe.Add(ref rowsRef, r1 * width);
                    ref float row2 = ref Unsafe.Add(ref rowsRef, r2 * width);
                    ref float row3 = ref Unsafe.Add(ref rowsRef, r3 * width);
                    ref float row4 = ref Unsafe.Add(ref rowsRef, r4 * width);
                    ref float row5 = ref Unsafe.Add(ref rowsRef, r5 * width);
                    ref float row6 = ref Unsafe.Add(ref rowsRef, r6 * width);
                    ref float row7 = ref Unsafe.Add(ref rowsRef, r7 * width);
                    int n0 = root, n1 = root, n2 = root, n3 = root, n4 = root, n5 = root, n6 = root, n7 = root;
                    // Until all eight are at a leaf (every n − firstLeaf at or above zero, so their OR too).
                    while (((n0 - firstLeaf) | (n1 - firstLeaf) | (n2 - firstLeaf) | (n3 - firstLeaf)
                        | (n4 - firstLeaf) | (n5 - firstLeaf) | (n6 - firstLeaf) | (n7 - firstLeaf)) < 0)
                    {
                        n0 = Step(ref nodes, n0, ref row0);
                        n1 = Step(ref nodes, n1, ref row1);
                        n2 = Step(ref nodes, n2, ref row2);
                        n3 = Step(ref nodes, n3, ref row3);
                        n4 = Step(ref nodes, n4, ref row4);
                        n5 = Step(ref nodes, n5, ref row5);
                        n6 = Step(ref nodes, n6, ref row6);
                        n7 = Step(ref nodes, n7, ref row7);
                    }
                    sums[r0] += _leaves[n0 - firstLeaf];
                    sums[r1] += _leaves[n1 - firstLeaf];
                    sums[r2] += _leaves[n2 - firstLeaf];
                    sums[r3] += _leaves[n3 - firstLeaf];
                    sums[r4] += _leaves[n4 - firstLeaf];
                    sums[r5] += _leaves[n5 - firstLeaf];
                    sums[r6] += _leaves[n6 - firstLeaf];
                    sums[r7] += _leaves[n7 - firstLeaf];
                }
                for (; k < count; k++)
                {
                    int r = scored[k];
                    ref float row = ref Unsafe.Add(ref rowsRef, r * width);
                    int node = root;
                    while (node < firstLeaf)
                    {
                        node = Step(ref nodes, node, ref row);
                    }
                    // An empty tree (ML.NET's stand-in for a constant zero one) is a leaf of value 0 here.
                    sums[r] += _leaves[node - firstLeaf];
                }
            }
        }

        // The child a row goes to from `node` (a leaf's children are itself): Left when the feature is at most the threshold
        // (no feature here is NaN, so "not above"), else Right, the int after it; picked by the comparison's value rather than
        // a branch, which would mispredict about every other step.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Step(ref Node nodes, int node, ref float row)
        {
            ref readonly var split = ref Unsafe.Add(ref nodes, node);
            bool right = Unsafe.Add(ref row, split.Feature) > split.Threshold;
            return Unsafe.Add(ref Unsafe.AsRef(in split.Left), Unsafe.As<bool, byte>(ref right));
        }

        // Null unless the model is a LightGBM regression with numeric splits only (the trainer here never declares categoricals).
        public static FlatTrees? From(ITransformer model)
        {
            if (model is not ISingleFeaturePredictionTransformer<object> { Model: LightGbmRegressionModelParameters parameters })
            {
                return null;
            }
            var roots = new List<int>();
            var features = new List<int>();
            var thresholds = new List<float>();
            var children = new List<int>();
            var leaves = new List<double>();
            foreach (var tree in parameters.TrainedTreeEnsemble.Trees)
            {
                if (tree.CategoricalSplitFlags.Any(f => f))
                {
                    return null;
                }
                int nodeBase = features.Count, leafBase = leaves.Count;
                // ML.NET's dummy tree (no split, left child 0) outputs 0 whatever the row.
                if (tree.NumberOfNodes == 0 || tree.LeftChild[0] == 0)
                {
                    leaves.Add(0.0);
                    roots.Add(~leafBase);
                    continue;
                }
                int Child(int c) => c >= 0 ? nodeBase + c : ~(leafBase + ~c);
                for (int n = 0; n < tree.NumberOfNodes; n++)
                {
                    features.Add(tree.NumericalSplitFeatureIndexes[n]);
                    thresholds.Add(tree.NumericalSplitThresholds[n]);
                    children.Add(Child(tree.LeftChild[n]));
                    children.Add(Child(tree.RightChild[n]));
                }
                leaves.AddRange(tree.LeafValues);
                roots.Add(nodeBase);
            }
            return new FlatTrees([.. roots], [.. features], [.. thresholds], [.. children], [.. leaves]);
        }
    }
}
