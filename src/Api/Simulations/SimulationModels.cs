using System.ComponentModel.DataAnnotations;
using System.Text.Json;

namespace Forecaster.Api.Simulations;

/// <summary>
/// The body of POST /api/v1/simulations: the resources whose stored load to replay, or inline series; the policy applied to
/// every series; and the days of history before the first replayed midnight (default 28).
/// </summary>
public sealed record SimulationRequest(string[]? Resources, InlineSeries[]? Series, JsonElement? Policy, int? TrainDays);

/// <summary>One inline load series: its name and points (hourly or finer).</summary>
public sealed record InlineSeries(string? Name, InlinePoint[]? Points);

/// <summary>One load point; a null value is a known gap.</summary>
public sealed record InlinePoint(DateTimeOffset Timestamp, double? Value);

/// <summary>Nightly fits replayed of the simulation's total (series × replayed days).</summary>
public sealed record SimulationProgress(int Done, int Total, double Percent);

/// <summary>The newest simulations, reports left out.</summary>
public sealed record SimulationPage(IReadOnlyList<SimulationView> Items);

/// <summary>A simulation: status and progress while it runs, then the report (<see cref="SimulationReport"/>) or the error.</summary>
public sealed record SimulationView(
    long Id, string Status, SimulationProgress Progress, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt,
    double? Seconds, string? Error, JsonElement? Report)
{
    public static SimulationView From(SimulationRow r)
    {
        JsonElement? report = null;
        if (r.Report is { } json)
        {
            using var doc = JsonDocument.Parse(json);
            report = doc.RootElement.Clone();
        }
        return new SimulationView(r.Id, r.Status,
            new SimulationProgress(r.FitsDone, r.FitsTotal, r.FitsTotal == 0 ? (r.Status == "succeeded" ? 100 : 0) : Math.Round(100.0 * r.FitsDone / r.FitsTotal, 1)),
            Utc(r.CreatedAt), r.StartedAt is { } s ? Utc(s) : null, r.FinishedAt is { } f ? Utc(f) : null,
            r.StartedAt is { } a && r.FinishedAt is { } b ? (b - a).TotalSeconds : null, r.Error, report);
    }

    static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));
}

/// <summary>The `Forecaster:Simulations` configuration section. Validated at start.</summary>
public sealed class SimulationOptions
{
    public const string Section = "Forecaster:Simulations";

    /// <summary>Simulations waiting to run; a POST beyond it is refused with 503 rather than piling up work.</summary>
    [Range(1, 10_000)]
    public int QueueCapacity { get; set; } = 16;

    /// <summary>The most series one simulation replays.</summary>
    [Range(1, 1_000_000)]
    public int MaxSeries { get; set; } = 5000;
}
