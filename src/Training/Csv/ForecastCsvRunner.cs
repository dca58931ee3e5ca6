using System.Globalization;
using Forecaster.Training.Forecasting;
using Forecaster.Training.Global;
using Forecaster.Training.Series;

namespace Forecaster.Training.Csv;

/// <summary>What the forecast command was asked: horizon, interval level, grid step, and fitting options.</summary>
public sealed record ForecastRequest
{
    /// <summary>Steps to forecast per series.</summary>
    public int Horizon { get; init; } = 48;

    /// <summary>Interval level.</summary>
    public double Level { get; init; } = 0.95;

    /// <summary>Grid step; finer data is averaged onto it.</summary>
    public TimeSpan Step { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Fitting options; the backtest horizon and level are taken from this request.</summary>
    public ForecastOptions Options { get; init; } = new();
}

/// <summary>The outcome of a forecast run: an exit code (0 ok, 2 bad input), the error shown to the user, counts.</summary>
public sealed record ForecastRunResult(int ExitCode, string? Error, int Series, int Rows)
{
    /// <summary>Exit code for malformed input or arguments.</summary>
    public const int BadInput = 2;
}

/// <summary>The forecast command's work, independent of the console: read history, fit every series in parallel, write forecasts.</summary>
public static class ForecastCsvRunner
{
    /// <summary>
    /// Reads <paramref name="input"/>, fits and forecasts each series (in parallel over all cores) and writes the forecasts to
    /// <paramref name="output"/> in input order. <paramref name="progress"/> receives (series done, series total), from any thread.
    /// A malformed row yields exit code 2 and <c>line N: reason</c>, with nothing written.
    /// </summary>
    public static ForecastRunResult Run(TextReader input, TextWriter output, ForecastRequest request, Action<int, int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (request.Horizon < 1)
        {
            return Bad("--horizon must be at least 1");
        }
        if (request.Level is <= 0 or >= 1)
        {
            return Bad("--level must be between 0 and 1, e.g. 0.95");
        }
        if (request.Step <= TimeSpan.Zero)
        {
            return Bad("--step must be positive");
        }

        IReadOnlyList<SeriesHistory> histories;
        try
        {
            histories = ForecastCsv.ReadHistory(input);
        }
        catch (ForecastCsvException ex)
        {
            return Bad(ex.Message);
        }
        if (histories.FirstOrDefault(h => h.Observations.All(o => double.IsNaN(o.Value))) is { } empty)
        {
            return Bad($"series '{empty.Series}' has no values");
        }

        var options = request.Options with { Horizon = request.Horizon, Level = request.Level };
        var built = new RegularSeries[histories.Count];
        Parallel.For(0, histories.Count, new ParallelOptions { CancellationToken = cancellationToken }, i => built[i] = SeriesBuilder.Build(histories[i].Observations, request.Step));
        if (options.Models.HasFlag(ModelKinds.Global))
        {
            // One fleet-wide model for the whole file, trained on each series' points before its first backtest origin.
            var fleet = built.Select(s => SeriesForecaster.ForGlobalModel(s.Values, s.Grid.Start, s.Grid.Step, options)).OfType<GlobalSeries>().ToArray();
            options = options with { Global = GlobalModel.Train(fleet, request.Horizon, "global-forecast-csv", options.GlobalModel) };
        }
        var forecasts = new Forecast[histories.Count];
        int done = 0;
        Parallel.For(0, histories.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            var series = built[i];
            var model = SeriesForecaster.Fit(series.Values, series.Grid.Start, series.Grid.Step, options);
            forecasts[i] = model.Forecast(request.Horizon, request.Level);
            progress?.Invoke(Interlocked.Increment(ref done), histories.Count);
        });

        output.WriteLine(ForecastCsv.OutputHeader);
        for (int i = 0; i < histories.Count; i++)
        {
            ForecastCsv.Write(output, histories[i].Series, forecasts[i]);
        }
        return new ForecastRunResult(0, null, histories.Count, histories.Count * request.Horizon);
    }

    /// <summary>Parses a step such as <c>1h</c>, <c>15m</c>, <c>30min</c>, <c>1d</c>, <c>90s</c> or <c>01:00:00</c>.</summary>
    public static bool TryParseStep(string text, out TimeSpan step)
    {
        text = text.Trim();
        int split = 0;
        while (split < text.Length && (char.IsDigit(text[split]) || text[split] == '.'))
        {
            split++;
        }
        if (split > 0 && double.TryParse(text[..split], NumberStyles.Float, CultureInfo.InvariantCulture, out double amount) && amount > 0)
        {
            TimeSpan? unit = text[split..].ToLowerInvariant() switch
            {
                "s" or "sec" => TimeSpan.FromSeconds(1),
                "m" or "min" => TimeSpan.FromMinutes(1),
                "h" or "hour" => TimeSpan.FromHours(1),
                "d" or "day" => TimeSpan.FromDays(1),
                _ => null,
            };
            if (unit is { } u)
            {
                step = u * amount;
                return true;
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out step) && step > TimeSpan.Zero;
    }

    private static ForecastRunResult Bad(string error) => new(ForecastRunResult.BadInput, error, 0, 0);
}
