using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forecaster.Training.Csv;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Forecaster.Training.Series;

namespace Forecaster.Bench.Forecasting;

/// <summary>
/// Fitting's CPU seconds and a full-precision fingerprint of every fit (issue 16): reads a history file as
/// <c>forecaster forecast</c> does, trains the fleet-wide model on it (unless <c>--no-global</c>), fits every series in
/// parallel (<c>--threads</c>, default all cores) <c>--runs</c> times and prints the process's CPU seconds per phase (read, fleet-wide model, each fitting run).
/// With <c>--out</c> it writes one line per series: the chosen model, a SHA-256 of the fitted model's JSON artifact (every
/// coefficient, score, calibration and upper error to the last bit) and the 48-step forecast in round-trip notation, so that
/// two builds can be compared with <c>cmp</c> where the forecast CSV's ten digits would hide a last-bit change.
/// </summary>
public static class FitDump
{
    public static async Task<int> Run(string[] args)
    {
        string input = Arg(args, "--input") ?? throw new ArgumentException("--input FILE is required");
        string? output = Arg(args, "--out");
        int runs = int.Parse(Arg(args, "--runs") ?? "1", CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg(args, "--threads") ?? "-1", CultureInfo.InvariantCulture);
        const int horizon = 48;
        var process = Process.GetCurrentProcess();
        double Cpu()
        {
            process.Refresh();
            return process.TotalProcessorTime.TotalSeconds;
        }

        double cpu0 = Cpu();
        IReadOnlyList<SeriesHistory> histories;
        using (var reader = new StreamReader(input))
        {
            histories = ForecastCsv.ReadHistory(reader);
        }
        var series = histories.Select(h => SeriesBuilder.Build(h.Observations, TimeSpan.FromHours(1))).ToArray();
        double cpu1 = Cpu();
        var options = new ForecastOptions { Horizon = horizon };
        if (!args.Contains("--no-global"))
        {
            var fleet = series.Select(s => SeriesForecaster.ForGlobalModel(s.Values, s.Grid.Start, s.Grid.Step, options)).OfType<GlobalSeries>().ToArray();
            options = options with { Global = GlobalModel.Train(fleet, horizon, "global-fitdump", options.GlobalModel) };
        }
        double cpu2 = Cpu();
        Console.WriteLine($"{series.Length} series; CPU s: reading {cpu1 - cpu0:F2}, fleet-wide model {cpu2 - cpu1:F2}");

        var fitted = new FittedModel[series.Length];
        for (int run = 0; run < runs; run++)
        {
            double before = Cpu();
            var wall = Stopwatch.StartNew();
            Parallel.For(0, series.Length, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => fitted[i] = SeriesForecaster.Fit(series[i].Values, series[i].Grid.Start, series[i].Grid.Step, options));
            Console.WriteLine($"run {run + 1}: fitting CPU {Cpu() - before:F2} s, wall {wall.Elapsed.TotalSeconds:F2} s, {1000 * (Cpu() - before) / series.Length:F3} CPU ms/series");
        }

        if (output is not null)
        {
            await using var writer = new StreamWriter(output);
            for (int i = 0; i < series.Length; i++)
            {
                var f = fitted[i].Forecast(horizon);
                var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(fitted[i].ToJson())))[..16];
                var points = string.Join(' ', f.Point.Concat(f.Lower).Concat(f.Upper).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
                await writer.WriteLineAsync($"{histories[i].Series}\t{fitted[i].Model.Name}\t{hash}\t{points}");
            }
            Console.WriteLine($"wrote {output}");
        }
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
