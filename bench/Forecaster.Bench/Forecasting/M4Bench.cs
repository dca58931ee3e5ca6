using System.Diagnostics;
using System.Globalization;
using Forecaster.Training.Baselines;
using Forecaster.Training.Csv;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Regression;
using Forecaster.Training.Series;
using Forecaster.Training.Smoothing;
using Forecaster.Training.Ssa;

namespace Forecaster.Bench.Forecasting;

/// <summary>
/// Runs the forecasting engine over M4 Hourly (issue 3): fit with selection + forecast for every series, timed over a few runs,
/// then each model alone on one core, and writes the forecast CSV for <c>score.py</c>.
/// <c>--holdout H</c> cuts the last H points off every series and writes them as the truth, for tuning without truth.csv.
/// </summary>
public static class M4Bench
{
    public static async Task<int> Run(string[] args)
    {
        string history = Arg(args, "--history") ?? "/work/shared/benchmarks/m4-hourly/history.csv";
        string output = Arg(args, "--out") ?? "m4-forecast.csv";
        int holdout = int.Parse(Arg(args, "--holdout") ?? "0", CultureInfo.InvariantCulture);
        int runs = int.Parse(Arg(args, "--runs") ?? "3", CultureInfo.InvariantCulture);
        int horizon = int.Parse(Arg(args, "--horizon") ?? "48", CultureInfo.InvariantCulture);

        var read = Stopwatch.StartNew();
        IReadOnlyList<SeriesHistory> histories;
        using (var reader = new StreamReader(history))
        {
            histories = ForecastCsv.ReadHistory(reader);
        }
        var series = histories.Select(h => SeriesBuilder.Build(h.Observations, TimeSpan.FromHours(1))).ToArray();
        read.Stop();
        Console.WriteLine($"read {series.Length} series in {read.Elapsed.TotalSeconds:F2} s");

        if (holdout > 0)
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(output))!;
            await WriteHoldout(histories, series, holdout, Path.Combine(dir, "holdout-history.csv"), Path.Combine(dir, "holdout-truth.csv"));
            series = series.Select(s => s with { Values = s.Values[..^holdout] }).ToArray();
            Console.WriteLine($"holdout: last {holdout} points cut; score against {Path.Combine(dir, "holdout-truth.csv")}");
        }

        var options = new ForecastOptions
        {
            Horizon = horizon,
            BacktestOrigins = int.Parse(Arg(args, "--origins") ?? "6", CultureInfo.InvariantCulture),
            IntervalInflation = double.Parse(Arg(args, "--inflation") ?? "1.4", CultureInfo.InvariantCulture),
        };
        Console.WriteLine($"backtest: {options.BacktestOrigins} origins, horizon {horizon}");
        var fitted = new FittedModel[series.Length];
        var seconds = new List<double>();
        for (int run = 0; run < runs; run++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, series.Length, i => fitted[i] = SeriesForecaster.Fit(series[i].Values, series[i].Grid.Start, series[i].Grid.Step, options));
            var forecasts = fitted.Select(f => f.Forecast(horizon, 0.95)).ToArray();
            sw.Stop();
            seconds.Add(sw.Elapsed.TotalSeconds);
            if (run == 0)
            {
                await using var writer = new StreamWriter(output);
                await writer.WriteLineAsync(ForecastCsv.OutputHeader);
                for (int i = 0; i < series.Length; i++)
                {
                    ForecastCsv.Write(writer, histories[i].Series, forecasts[i]);
                }
            }
        }
        seconds.Sort();
        double median = seconds[seconds.Count / 2];
        Console.WriteLine($"fit+select+forecast, {Environment.ProcessorCount} cores: median {median:F2} s over {runs} runs, {series.Length / median:F0} series/s ({1000 * median * Environment.ProcessorCount / series.Length:F2} core-ms/series)");

        var chosen = fitted.GroupBy(f => Family(f.Model.Name)).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}");
        Console.WriteLine($"chosen models: {string.Join(", ", chosen)}");
        Console.WriteLine($"backtest MASE: chosen {fitted.Average(f => f.Backtest?.Chosen.Mase ?? double.NaN):F3}, snaive24 {fitted.Average(f => f.Backtest?.SeasonalNaiveDaily?.Mase ?? double.NaN):F3}");

        if (!args.Contains("--no-per-model"))
        {
            PerModel(series, options);
        }
        Console.WriteLine($"wrote {output}");
        return 0;
    }

    // Each model alone, fitted once per series on one core: where the time goes.
    private static void PerModel(RegularSeries[] series, ForecastOptions options)
    {
        int horizon = options.Horizon;
        var ridge = new RidgeOptions();
        var ssa = new SsaOptions();
        var models = new (string Name, Func<double[], TimeGrid, IForecastModel?> Fit)[]
        {
            ("snaive24", (x, _) => SeasonalNaiveModel.Fit(x, 24)),
            ("ridge", (x, g) => RidgeModel.Fit(x, g, ridge)),
            ("ssa (L=73)", (x, _) => SsaModel.Fit(x, ssa, 24, 0)),
            ("ssa (L=169)", (x, _) => SsaModel.Fit(x, ssa, 24, 168)),
            ("ets24", (x, _) => SmoothingModel.Fit(x, 24, "ets")),
            ("theta24", (x, _) => SmoothingModel.Fit(x, 24, "theta")),
            ("whole selection", (x, g) => SeriesForecaster.Fit(x, g.Start, g.Step, options).Model),
        };
        foreach (var (name, fit) in models)
        {
            var sw = Stopwatch.StartNew();
            foreach (var s in series)
            {
                fit(s.Values, s.Grid)?.Forecast(horizon);
            }
            Console.WriteLine($"  {name,-16} {1000 * sw.Elapsed.TotalSeconds / series.Length,7:F3} ms/series (one core, fit + forecast)");
        }
    }

    private static async Task WriteHoldout(IReadOnlyList<SeriesHistory> histories, RegularSeries[] series, int holdout, string historyPath, string truthPath)
    {
        await using var h = new StreamWriter(historyPath);
        await using var t = new StreamWriter(truthPath);
        await h.WriteLineAsync("series,timestamp,value");
        await t.WriteLineAsync("series,timestamp,value");
        for (int i = 0; i < series.Length; i++)
        {
            var s = series[i];
            for (int k = 0; k < s.Values.Length; k++)
            {
                var writer = k < s.Values.Length - holdout ? h : t;
                await writer.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{histories[i].Series},{ForecastCsv.FormatTimestamp(s.Grid.At(k))},{s.Values[k]}"));
            }
        }
    }

    private static string Family(string name) => name.StartsWith("ssa", StringComparison.Ordinal) ? "ssa" : name;

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
