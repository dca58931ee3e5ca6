using System.Globalization;
using Forecaster.Training.Csv;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Forecaster.Training.Series;

namespace Forecaster.Bench.Forecasting;

/// <summary>
/// Tuning on M4 Hourly's own history (issue 15): cuts the last <c>--holdout</c> points (48) off every series, runs every
/// candidate's backtest on the rest, and scores each candidate alone and several ways of choosing or combining them on the
/// cut tail. The competition's test part is never read.
/// </summary>
public static class M4Candidates
{
    public static Task<int> Run(string[] args)
    {
        string history = Arg(args, "--history") ?? "/work/shared/benchmarks/m4-hourly/history.csv";
        int holdout = int.Parse(Arg(args, "--holdout") ?? "48", CultureInfo.InvariantCulture);
        const int horizon = 48;
        bool global = !args.Contains("--no-global-model");
        IReadOnlyList<SeriesHistory> histories;
        using (var reader = new StreamReader(history))
        {
            histories = ForecastCsv.ReadHistory(reader);
        }
        var full = histories.Select(h => SeriesBuilder.Build(h.Observations, TimeSpan.FromHours(1))).ToArray();
        var series = full.Select(s => s with { Values = s.Values[..^holdout] }).ToArray();
        var truth = full.Select(s => s.Values[^holdout..][..horizon]).ToArray();
        var globalOptions = new GlobalModelOptions();
        globalOptions = globalOptions with
        {
            Iterations = int.Parse(Arg(args, "--global-iterations") ?? globalOptions.Iterations.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
            MaxRows = int.Parse(Arg(args, "--global-rows") ?? globalOptions.MaxRows.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
            Leaves = int.Parse(Arg(args, "--global-leaves") ?? globalOptions.Leaves.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        };
        var options = new ForecastOptions { Horizon = horizon, GlobalModel = globalOptions };
        if (global)
        {
            var fleet = series.Select(s => SeriesForecaster.ForGlobalModel(s.Values, s.Grid.Start, s.Grid.Step, options)).OfType<GlobalSeries>().ToArray();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            options = options with { Global = GlobalModel.Train(fleet, horizon, "global-bench", options.GlobalModel) };
            Console.WriteLine($"global model: {options.Global?.Rows} rows, {sw.Elapsed.TotalSeconds:F1} s");
        }
        var runs = new IReadOnlyList<CandidateRun>[series.Length];
        Parallel.For(0, series.Length, i => runs[i] = SeriesForecaster.Candidates(series[i].Values, series[i].Grid.Start, series[i].Grid.Step, options));
        var without = (Arg(args, "--without") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
        runs = runs.Select(r => (IReadOnlyList<CandidateRun>)r.Where(c => !without.Contains(c.Kind)).ToList()).ToArray();
        var scale = series.Select(s => Accuracy.MaseScale(s.Values, 24)).ToArray();

        var kinds = runs.SelectMany(r => r.Select(c => c.Kind)).Distinct().ToArray();
        Console.WriteLine($"{"candidate",-22} {"holdout MASE",12} {"sMAPE",7} {"backtest MASE",13} {"series",6} {"ranked 1st",10} {"in top 5",8}");
        foreach (var kind in kinds)
        {
            var idx = Enumerable.Range(0, series.Length).Where(i => runs[i].Any(c => c.Kind == kind && c.Final is not null)).ToArray();
            double mase = idx.Average(i => Accuracy.Mase(truth[i], runs[i].First(c => c.Kind == kind).Final!.Point, scale[i]));
            double smape = idx.Average(i => Accuracy.Smape(truth[i], runs[i].First(c => c.Kind == kind).Final!.Point));
            double bt = idx.Average(i => runs[i].First(c => c.Kind == kind).Mase);
            int first = runs.Count(r => r.Count > 0 && r[0].Kind == kind);
            int top5 = runs.Count(r => r.Take(5).Any(c => c.Kind == kind));
            var each = idx.Select(i => Accuracy.Mase(truth[i], runs[i].First(c => c.Kind == kind).Final!.Point, scale[i])).Order().ToArray();
            Console.WriteLine($"{kind,-22} median {each[each.Length / 2]:F3} {mase,12:F3} {smape,7:F3} {bt,13:F3} {idx.Length,6} {first,10} {top5,8}");
        }

        // Ways of choosing or combining, each from the backtest only; each yields a forecast of the tail per series.
        var schemes = new List<(string Name, Func<IReadOnlyList<CandidateRun>, double[]> Pick)>
        {
            ("best by backtest", r => r[0].Final!.Point),
        };
        for (int k = 2; k <= 7; k++)
        {
            int kk = k;
            schemes.Add(($"mean of top {k}", r => Mean(r.Take(kk).Select(c => c.Final!.Point).ToArray(), null)));
            schemes.Add(($"inv-MASE mean top {k}", r => Mean(r.Take(kk).Select(c => c.Final!.Point).ToArray(), CombinationModel.InverseErrorWeights(r.Take(kk).Select(c => c.Mase).ToArray()))));
            schemes.Add(($"median of top {k}", r => Median(r.Take(kk).Select(c => c.Final!.Point).ToArray())));
        }
        schemes.Add(("oracle (best on the tail)", r => r.Where(c => c.Final is not null).MinBy(c => Accuracy.Mase(truth[Array.IndexOf(runs, r)], c.Final!.Point, 1))!.Final!.Point));
        foreach (double power in new[] { 1.0, 2.0, 3.0, 4.0, 6.0 })
        {
            for (int k = 3; k <= 7; k++)
            {
                int kk = k;
                double pw = power;
                schemes.Add(($"OWA^{power} top {k}", r =>
                {
                    var ranked = r.OrderBy(c => Owa(c, r)).Take(kk).ToArray();
                    return Mean(ranked.Select(c => c.Final!.Point).ToArray(), Normalise(ranked.Select(c => 1 / Math.Pow(Math.Max(Owa(c, r), 1e-9), pw)).ToArray()));
                }));
            }
        }
        schemes.Add(("median of all", r => Median(r.Select(c => c.Final!.Point).ToArray())));
        schemes.Add(("mean of all", r => Mean(r.Select(c => c.Final!.Point).ToArray(), null)));
        schemes.Add(("mean within 1.1x of best", r => Mean(r.Where(c => c.Mase <= 1.1 * r[0].Mase).Select(c => c.Final!.Point).ToArray(), null)));
        schemes.Add(("mean within 1.2x of best", r => Mean(r.Where(c => c.Mase <= 1.2 * r[0].Mase).Select(c => c.Final!.Point).ToArray(), null)));
        schemes.Add(("mean within 1.3x of best", r => Mean(r.Where(c => c.Mase <= 1.3 * r[0].Mase).Select(c => c.Final!.Point).ToArray(), null)));
        schemes.Add(("inv-MASE² all", r => Mean(r.Select(c => c.Final!.Point).ToArray(), Normalise(r.Select(c => 1 / (c.Mase * c.Mase)).ToArray()))));
        foreach (var (name, pick) in schemes)
        {
            var idx = Enumerable.Range(0, series.Length).Where(i => runs[i].Count > 0 && runs[i].All(c => c.Final is not null)).ToArray();
            double mase = idx.Average(i => Accuracy.Mase(truth[i], pick(runs[i]), scale[i]));
            double smape = idx.Average(i => Accuracy.Smape(truth[i], pick(runs[i])));
            var each = idx.Select(i => Accuracy.Mase(truth[i], pick(runs[i]), scale[i])).Order().ToArray();
            Console.WriteLine($"{name,-28} holdout MASE {mase:F3} sMAPE {smape:F3} median MASE {each[each.Length / 2]:F3} worst-20 share {each[^20..].Sum() / each.Sum():P0}");
        }
        return Task.FromResult(0);
    }

    // The backtest's MASE and sMAPE each relative to seasonal naive's (the first run), averaged: M4's OWA with sNaive24 for Naive2.
    private static double Owa(CandidateRun c, IReadOnlyList<CandidateRun> all)
    {
        var snaive = all.First(a => a.Kind == "snaive-daily");
        return (c.Mase / Math.Max(snaive.Mase, 1e-9)) + (Smape(c) / Math.Max(Smape(snaive), 1e-9));
    }

    private static double Smape(CandidateRun c)
    {
        double smape = 0;
        for (int j = 0; j < c.Backtest.Length; j++)
        {
            smape += Accuracy.Smape(c.Actuals[j], c.Backtest[j].Point) / c.Backtest.Length;
        }
        return smape;
    }

    private static double[] Normalise(double[] w)
    {
        double total = w.Sum();
        return w.Select(v => v / total).ToArray();
    }

    private static double[] Mean(double[][] parts, double[]? weights)
    {
        var result = new double[parts[0].Length];
        for (int i = 0; i < parts.Length; i++)
        {
            for (int h = 0; h < result.Length; h++)
            {
                result[h] += (weights?[i] ?? (1.0 / parts.Length)) * parts[i][h];
            }
        }
        return result;
    }

    private static double[] Median(double[][] parts)
    {
        var result = new double[parts[0].Length];
        var column = new double[parts.Length];
        for (int h = 0; h < result.Length; h++)
        {
            for (int i = 0; i < parts.Length; i++)
            {
                column[i] = parts[i][h];
            }
            Array.Sort(column);
            int n = column.Length;
            result[h] = n % 2 == 1 ? column[n / 2] : 0.5 * (column[(n / 2) - 1] + column[n / 2]);
        }
        return result;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
