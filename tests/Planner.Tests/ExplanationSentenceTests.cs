using System.Globalization;
using System.Text.RegularExpressions;
using static Forecaster.Planner.Tests.Scenarios;

namespace Forecaster.Planner.Tests;

/// <summary>
/// Every kind of explanation, one test each: the sentence names where the load came from and the numbers it used, and
/// those are the inputs' numbers (the forecast's bound, yesterday's observation, the capacity, the count).
/// </summary>
public partial class ExplanationSentenceTests
{
    private static readonly Policy Base = new() { ForecastBound = ForecastBound.Point, CapacityPerReplica = 100, TargetUtilization = 1, Tolerance = 0, ScaleDownDelayHours = 0, MinReplicas = 3 };

    private static string G6(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>Observed 2,000 yesterday at every hour, 3,000 a week ago (only two days of it).</summary>
    private static HourlySeries History(bool yesterday = true)
    {
        var values = new double[8 * 24];
        for (var i = 0; i < values.Length; i++)
        {
            var at = Start.AddDays(-8).AddHours(i);
            values[i] = at >= Start.AddDays(-1) ? (yesterday ? 2000 : double.NaN) : at >= Start.AddDays(-7) && at < Start.AddDays(-5) ? 3000 : double.NaN;
        }
        return new HourlySeries(Start.AddDays(-8), values);
    }

    private static PlanInput Input(Policy policy, ForecastRun? forecast, HourlySeries? observed = null, int? current = 5) =>
        Simple(new double[48], policy, current) with { Forecast = forecast, ObservedLoad = observed };

    private static ForecastRun Flat(double point) => ForecastOf([.. Enumerable.Repeat(point, 48)]);

    [Fact]
    public void ForecastPointNamesThePointAndTheCountItGives()
    {
        var step = Planned(Input(Base, Flat(1234))).Steps[0];
        Assert.Equal(StepSource.Forecast, step.Source);
        Assert.StartsWith("forecast point 1234; capacity 100 (Policy) at target 1 -> raw 12.34 -> 13", step.Explanation.Sentence);
        Assert.EndsWith($"; planned {step.Count}", step.Explanation.Sentence);
        Assert.Equal(13, step.Count);
    }

    [Fact]
    public void ForecastUpperBoundNamesTheUpperBoundsValue()
    {
        // ForecastOf's upper bound is 1.2 × the point.
        var step = Planned(Input(Base with { ForecastBound = ForecastBound.Upper }, Flat(1000))).Steps[0];
        Assert.StartsWith($"forecast upper bound {G6(1200)}; capacity 100", step.Explanation.Sentence);
        Assert.Equal(12, step.Count);
    }

    [Fact]
    public void YesterdaySameHourSaysObservedWithTheHourItWasObserved()
    {
        var step = Planned(Input(Base, null, History())).Steps[0];
        Assert.Equal(StepSource.YesterdaySameHour, step.Source);
        Assert.StartsWith($"fallback (no forecast): observed 2000 at {Start.AddDays(-1):yyyy-MM-dd HH:mm}Z; capacity 100", step.Explanation.Sentence);
        Assert.Equal(2000, History().Values[(int)(Start.AddDays(-1) - History().Start).TotalHours]);
        Assert.Equal(20, step.Count);
    }

    [Fact]
    public void LastWeekSameHourSaysObservedWithLastWeeksHour()
    {
        var step = Planned(Input(Base, null, History(yesterday: false))).Steps[0];
        Assert.Equal(StepSource.LastWeekSameHour, step.Source);
        Assert.StartsWith($"fallback (no forecast): observed 3000 at {Start.AddDays(-7):yyyy-MM-dd HH:mm}Z", step.Explanation.Sentence);
        Assert.Equal(30, step.Count);
    }

    [Fact]
    public void StaticWithoutHistorySaysMaxOfMinAndCurrentAndNamesNoLoad()
    {
        var step = Planned(Input(Base, null, null, current: 5)).Steps[0];
        Assert.Equal("fallback (no forecast); static max(minReplicas, current); planned 5", step.Explanation.Sentence);
        Assert.Equal(Math.Max(Base.MinReplicas!.Value, 5), step.Count);
    }

    [Fact]
    public void NoCapacityWithAForecastSaysTheLoadWasTheForecastsNotAnObservation()
    {
        // The issue's lie: "observed 1950.41 at ..." for a load that was the forecast's upper bound.
        var policy = Base with { CapacityPerReplica = null, ForecastBound = ForecastBound.Upper };
        var step = Planned(Input(policy, Flat(1625.341666), History())).Steps[0];
        Assert.Equal((StepSource.Static, FallbackReason.NoCapacity), (step.Source, step.Explanation.Fallback));
        Assert.DoesNotContain("observed", step.Explanation.Sentence, StringComparison.Ordinal);
        Assert.Equal(
            $"fallback (capacity per replica unknown): forecast upper bound {G6(1625.341666 * 1.2)} for {Start:yyyy-MM-dd HH:mm}Z not converted to replicas; static max(minReplicas, current); planned 5",
            step.Explanation.Sentence);
        Assert.Equal(ForecastBound.Upper, step.Explanation.Bound);
    }

    [Fact]
    public void NoCapacityWithoutAForecastSaysObservedAndThatItWasNotConverted()
    {
        var step = Planned(Input(Base with { CapacityPerReplica = null }, null, History())).Steps[0];
        Assert.Equal(
            $"fallback (capacity per replica unknown): observed 2000 at {Start.AddDays(-1):yyyy-MM-dd HH:mm}Z not converted to replicas; static max(minReplicas, current); planned 5",
            step.Explanation.Sentence);
        Assert.Null(step.Explanation.Bound);
    }

    [Fact]
    public void WindowNamesItsDaysHoursZoneAndWhatItSets()
    {
        var window = new PolicyWindow { Days = DaySet.All, From = ClockTime.Parse("00:00"), To = ClockTime.Parse("24:00"), TimeZone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin"), MinReplicas = 40 };
        var step = Planned(Input(Base with { Windows = [window] }, Flat(1000))).Steps[0];
        Assert.Contains("; window Mon,Tue,Wed,Thu,Fri,Sat,Sun 00:00-24:00 Europe/Berlin: min 40 applied; windowMin: 10 -> 40 (limit 40); planned 40", step.Explanation.Sentence);
        Assert.DoesNotContain("window 0", step.Explanation.Sentence, StringComparison.Ordinal);
        Assert.Equal(40, step.Count);
    }

    [Fact]
    public void ClampsNameTheRuleTheCountsAndTheLimit()
    {
        var step = Planned(Input(Base with { MaxReplicas = 8 }, Flat(1000))).Steps[0];
        Assert.EndsWith("-> raw 10.00 -> 10; maxReplicas: 10 -> 8 (limit 8); planned 8", step.Explanation.Sentence);
        Assert.Equal(8, step.Count);
    }

    [Fact]
    public void JobDemandAddsUpToTheNeededRateItShows()
    {
        var policy = Base with { CapacityPerReplica = null, CapacityPerSubtask = 500, MaxParallelism = null };
        var input = Input(policy, Flat(1000)) with { Kind = ResourceKind.Job, CurrentBacklog = 60_000 };
        var step = Planned(input).Steps[0];
        var job = step.Explanation.Job!;
        var match = NeededRate().Match(step.Explanation.Sentence);
        Assert.True(match.Success, step.Explanation.Sentence);
        double Number(string group) => double.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture);
        var sum = (Number("rate") / Number("target")) + (Number("backlog") / Number("catchup")) + (Number("rate") * Number("restart") / Number("catchup"));
        Assert.Equal(Number("needed"), sum, 3);
        Assert.Equal(job.NeededRate, Number("needed"), 3);
        Assert.Equal((int)Math.Ceiling(job.NeededRate / 500), step.Count);
    }

    [Fact]
    public void EverySentenceOfRandomPlansNamesTheLoadItsSourceUsed()
    {
        foreach (var seed in Seeds(60))
        {
            var r = new Random(seed);
            var input = RandomInput(r, r.Next(2) == 0 ? ResourceKind.Service : ResourceKind.Job);
            if (ScalePlanner.Plan(input) is not Planned<Plan> planned)
            {
                continue;
            }
            foreach (var step in planned.Value.Steps)
            {
                var e = step.Explanation;
                var sentence = e.Sentence;
                Assert.EndsWith($"; planned {step.Count}", sentence);
                if (e.Load is double load && e.LoadHour is DateTimeOffset at)
                {
                    if (e.Bound is ForecastBound bound)
                    {
                        var hour = input.Forecast!.Hours.Single(h => h.Hour == at);
                        Assert.Equal(Math.Max(0, hour.At(bound)), load);
                        Assert.DoesNotContain("observed", sentence, StringComparison.Ordinal);
                    }
                    else
                    {
                        Assert.True(input.ObservedLoad!.TryGet(at, out var observed), $"seed {seed}: {sentence}");
                        Assert.Equal(observed, load);
                        Assert.Contains($"observed {G6(load)} at {at:yyyy-MM-dd HH:mm}Z", sentence, StringComparison.Ordinal);
                    }
                }
                Assert.DoesNotMatch(@"window \d+ applied", sentence);
            }
        }
    }

    [GeneratedRegex(@"needed rate (?<rate>[\d.E+-]+)/(?<target>[\d.]+) \+ backlog (?<backlog>[\d.E+-]+)/(?<catchup>[\d.E+-]+)s \+ restart [\d.E+-]+×(?<restart>[\d.E+-]+)s/[\d.E+-]+s = (?<needed>[\d.E+-]+)")]
    private static partial Regex NeededRate();
}

public class CapacityRefusalTests
{
    [Theory]
    [InlineData(0.28, 833, "capacity model fit too weak (R² 0.28 < 0.5)")]
    [InlineData(0.91, 30, "capacity model fit on too few hours (30 samples < 48)")]
    [InlineData(0.28, 30, "capacity model fit too weak (R² 0.28 < 0.5 and 30 samples < 48)")]
    public void TheRefusalNamesOnlyTheConditionsThatFail(double rSquared, int samples, string expected)
    {
        var capacity = new CapacityModel(0.2, 0.001, rSquared, samples).CapacityAt(2);
        Assert.Null(capacity.PerUnit);
        Assert.Equal(expected, capacity.Gap);
    }

    [Fact]
    public void AGoodFitIsUsed() =>
        Assert.Equal(1800, new CapacityModel(0.2, 0.001, 0.9, 833).CapacityAt(2).PerUnit!.Value, 6);
}
