// Issue 15: which of the hours the demo replay scores (`forecaster simulate --demo`, as bench/simulate.sh runs it) hold a
// burst onset that no forecast can see, and how many of each strategy's short hours they are. DemoFleet draws a burst
// independently at each step (p = 0.003 per hour, 1.6-3.0x, halving every hour), so a plan sized at the target on even a
// perfect forecast of everything else is short wherever a burst lifts the hour's load above 1 / target of it.
//   dotnet run bench/demo-bursts.cs [simulate-report.json]
// With a report (simulate --demo --output), its training days and target are used and its short hours are matched
// against the onsets; without one, 28 training days and a 0.7 target.
#:project ../src/Api/Forecaster.Api.csproj
#:property Configuration=Release
using System.Text.Json;
using Forecaster.Api.Demo;
using Forecaster.Api.Simulations;

JsonElement? report = args.Length > 0 ? JsonDocument.Parse(File.ReadAllText(args[0])).RootElement : null;
var target = report?.GetProperty("targetUtilization").GetDouble() ?? 0.7;
var trainDays = report?.GetProperty("trainDays").GetInt32() ?? 28;
var end = SimulateCommand.DemoEnd.UtcDateTime;
var scoredFrom = end.AddDays(-(DemoFleet.HistoryDays - trainDays));

var onsets = new HashSet<(string Series, DateTime Hour)>();
var beyondTarget = 0;
Console.WriteLine($"burst onsets in the hours the --demo replay scores ({scoredFrom:yyyy-MM-dd} to {end:yyyy-MM-dd}, hourly means):");
Console.WriteLine($"{"series",-22} {"hour (UTC)",-13} {"burst",6} {"load / noiseless load",22}");
foreach (var r in DemoFleet.Resources())
{
    // Hourly means, as simulate scores them (one series is generated per minute).
    var hours = DemoFleet.Steps(r, end)
        .Where(s => s.Timestamp >= scoredFrom)
        .GroupBy(s => new DateTime(s.Timestamp.Ticks - s.Timestamp.Ticks % TimeSpan.TicksPerHour, DateTimeKind.Utc));
    foreach (var hour in hours.Where(h => h.Any(s => s.BurstStarts)))
    {
        var ratio = hour.Average(s => s.Load) / hour.Average(s => s.NoiselessLoad);
        onsets.Add((r.Name, hour.Key));
        beyondTarget += ratio > 1 / target ? 1 : 0;
        Console.WriteLine($"{r.Name,-22} {hour.Key:yyyy-MM-dd HH} {hour.Max(s => s.BurstFactor),6:F2} {ratio,22:F2}");
    }
}
Console.WriteLine($"{onsets.Count} burst onsets; {beyondTarget} of them lift their hour above 1 / {target:0.###} = {1 / target:F2}x the noiseless load");

if (report is { } rep)
{
    Console.WriteLine();
    Console.WriteLine($"{"strategy",-20} {"short hours",12} {"at a burst onset",17} {"the hour after one",19}");
    var strategies = rep.GetProperty("totals").EnumerateObject().Select(p => p.Name).ToList();
    foreach (var strategy in strategies)
    {
        int shortHours = 0, atOnset = 0, afterOnset = 0;
        foreach (var series in rep.GetProperty("underProvisioned").EnumerateObject())
        {
            foreach (var hour in series.Value.GetProperty(strategy).EnumerateArray().Select(h => h.GetDateTimeOffset().UtcDateTime))
            {
                shortHours++;
                atOnset += onsets.Contains((series.Name, hour)) ? 1 : 0;
                afterOnset += onsets.Contains((series.Name, hour.AddHours(-1))) ? 1 : 0;
            }
        }
        Console.WriteLine($"{strategy,-20} {shortHours,12} {atOnset,17} {afterOnset,19}");
    }
}
