using Forecaster.Api.Plans;
using Forecaster.Api.Serving;
using Forecaster.Planner;
using Forecaster.Planner.Tests;

namespace Forecaster.Api.Tests.Serving;

/// <summary>
/// Issue 16: a resource polled again is answered from the answer it holds while that answer's step and staleness still
/// hold, decided without reading the plan. Whatever the order of polls, each answer is byte for byte what a resource
/// holding nothing renders for the same instant: at step boundaries, at the plan's last tick and end, across the plan's
/// staleness instant (GeneratedAt + PlanStaleAfterHours, to the tick) and while the database is away; for regular plans,
/// for plans whose steps are not whole hours apart, and for plans whose first steps are over.
/// </summary>
public sealed class RepeatedAnswerTests
{
    static readonly ServingOptions Options = new();

    static IEnumerable<(Plan Plan, ServedPlan Served)> Plans()
    {
        foreach (var seed in Scenarios.Seeds(60))
        {
            var r = new Random(seed);
            var kind = seed % 3 == 0 ? ResourceKind.Job : ResourceKind.Service;
            if (ScalePlanner.Plan(Scenarios.RandomInput(r, kind)) is not Planned<Plan> { Value: var plan })
            {
                continue;
            }
            var steps = plan.Steps;
            // Every fifth: steps that are not whole hours apart (IndexAt walks them); every seventh: the first three are over.
            if (seed % 5 == 0)
            {
                steps = [.. steps.Select((s, k) => s with { Start = s.Start.AddTicks(k * 7), End = s.End.AddTicks((k + 1) * 7) })];
            }
            var keepFrom = seed % 7 == 0 ? steps[2].End : steps[0].Start.AddHours(-1);
            yield return (plan with { Steps = steps }, new ServedPlan(seed, plan.GeneratedAt, seed % 4 == 0, PackedSteps.Write(steps), keepFrom));
        }
    }

    static ServedResource Resource(Plan plan, ServedPlan served) =>
        new(1, "polled", plan.Kind, "g", new DateTime(2025, 3, 20, 0, 0, 0, DateTimeKind.Utc), 1, served, null, []);

    /// <summary>Polls in the order given and compares each answer with a fresh resource's.</summary>
    static int PollAndCompare(Plan plan, ServedPlan served, IEnumerable<(DateTimeOffset At, DateTimeOffset Now, bool DatabaseStale)> polls)
    {
        var held = Resource(plan, served);
        var count = 0;
        foreach (var (at, now, databaseStale) in polls)
        {
            var answer = held.Current(at, now, databaseStale, Options);
            var expected = Resource(plan, served).Current(at, now, databaseStale, Options);
            var what = $"plan {served.Version}, at {at:O}, now {now:O}, database stale {databaseStale}";
            Assert.True(expected.Body.AsSpan().SequenceEqual(answer.Body), $"{what}: {System.Text.Encoding.UTF8.GetString(answer.Body)} instead of {System.Text.Encoding.UTF8.GetString(expected.Body)}");
            Assert.Equal(expected.ETag, answer.ETag);
            Assert.Equal(expected.ValidUntil, answer.ValidUntil);
            Assert.Equal(expected.Count, answer.Count);
            Assert.Equal(expected.Source, answer.Source);
            Assert.Equal(expected.Missing, answer.Missing);
            count++;
        }
        return count;
    }

    [Fact]
    public void EveryAnswerIsWhatAResourceHoldingNothingRendersWhateverWasPolledBefore()
    {
        var compared = 0;
        foreach (var (plan, served) in Plans())
        {
            var steps = plan.Steps;
            var generated = plan.GeneratedAt;
            var staleAt = generated.AddHours(Options.PlanStaleAfterHours);
            // Instants that matter: each step's start, a tick before it, its middle; the last tick and the end of the plan; before it.
            var instants = steps.SelectMany(s => new[] { s.Start, s.Start.AddTicks(-1), s.Start.AddMinutes(30) })
                .Append(steps[^1].End.AddTicks(-1)).Append(steps[^1].End).Append(steps[0].Start.AddHours(-3)).ToList();
            // Clocks: fresh, a tick either side of the staleness instant, long stale.
            var clocks = new[] { generated.AddMinutes(5), staleAt.AddTicks(-1), staleAt, staleAt.AddTicks(1), staleAt.AddHours(5) };
            // In time order (as pollers go), then shuffled, each with the database away now and then.
            var r = new Random((int)served.Version);
            var ordered = instants.Order().SelectMany(at => clocks.Select(now => (at, now, false)));
            var shuffled = Enumerable.Range(0, 400).Select(_ => (instants[r.Next(instants.Count)], clocks[r.Next(clocks.Length)], r.Next(6) == 0));
            // Repeats: the same poll several times in a row, where the held answer is served.
            var repeated = instants.SelectMany(at => Enumerable.Repeat((at, clocks[0], false), 3).Append((at, clocks[0], true)).Append((at, staleAt, false)));
            compared += PollAndCompare(plan, served, ordered) + PollAndCompare(plan, served, shuffled) + PollAndCompare(plan, served, repeated);
        }
        Assert.True(compared > 20_000, $"only {compared} polls compared");
    }

    [Fact]
    public void ARepeatedPollInTheSameStepGetsTheHeldAnswerAndANewStepOrStalenessANewOne()
    {
        var (plan, served) = Plans().First(p => p.Served.Version % 5 != 0 && p.Served.Version % 7 != 0);
        var held = Resource(plan, served);
        var step = plan.Steps[3];
        var now = plan.GeneratedAt.AddMinutes(5);
        var first = held.Current(step.Start, now, false, Options);
        Assert.Same(first, held.Current(step.Start.AddMinutes(59), now.AddMinutes(30), false, Options));
        Assert.Same(first, held.Current(step.End.AddTicks(-1), now, false, Options));
        var next = held.Current(step.End, now, false, Options);
        Assert.NotSame(first, next);
        Assert.Equal(plan.Steps[4].End, next.ValidUntil);
        var stale = held.Current(step.End, plan.GeneratedAt.AddHours(Options.PlanStaleAfterHours).AddTicks(1), false, Options);
        Assert.NotSame(next, stale);
        Assert.Contains("\"stale\":true", System.Text.Encoding.UTF8.GetString(stale.Body));
        Assert.Contains("\"stale\":false", System.Text.Encoding.UTF8.GetString(next.Body));
    }
}
