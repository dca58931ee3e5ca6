using Dapper;
using Forecaster.Api.Demo;
using Forecaster.Api.Samples;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Forecaster.Api.Tests;

public sealed class DemoFleetTests
{
    static readonly DateTime End = new(2026, 11, 21, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void TheFleetIsDeterministicAndHasServicesAndJobsWithTheirMetrics()
    {
        var fleet = DemoFleet.Resources();
        Assert.Equal(20, fleet.Count(r => r.Kind == Forecaster.Planner.ResourceKind.Service));
        Assert.Equal(5, fleet.Count(r => r.Kind == Forecaster.Planner.ResourceKind.Job));
        Assert.Equal(DemoFleet.Samples(fleet[3], End).Take(500), DemoFleet.Samples(DemoFleet.Resources()[3], End).Take(500));
        var job = fleet.First(r => r.Kind == Forecaster.Planner.ResourceKind.Job);
        Assert.Equal(["backlog_records", "cpu_cores", "memory_bytes", "records_in_rate", "replicas"], DemoFleet.Samples(job, End).Select(s => s.Metric).Distinct().Order());
    }

    [Fact]
    public void BurstsStartAtRandomAndHalveEveryHour()
    {
        var steps = DemoFleet.Resources().Where(r => r.Step == TimeSpan.FromHours(1)).SelectMany(r => DemoFleet.Steps(r, End).Zip(DemoFleet.Steps(r, End).Skip(1))).ToList();
        var onsets = steps.Where(p => p.Second.BurstStarts).ToList();
        // p = 0.003 an hour over 24 hourly series x 35 days: about 60 onsets.
        Assert.InRange(onsets.Count, 30, 100);
        Assert.All(onsets, p => Assert.InRange(p.Second.BurstFactor, 1.6, 3.0));
        // Without a new onset the excess halves each hour (or the step follows a gap, which the factor ignores).
        Assert.All(steps.Where(p => !p.Second.BurstStarts && p.Second.Timestamp - p.First.Timestamp == TimeSpan.FromHours(1)),
            p => Assert.Equal((p.First.BurstFactor - 1) / 2, p.Second.BurstFactor - 1, 12));
        // The load is the noiseless load times the noise and the burst (the noise is within ±60%).
        Assert.All(steps.Select(p => p.Second), s => Assert.InRange(s.Load / (s.NoiselessLoad * s.BurstFactor), 0.4, 1.6));
    }

    [Fact]
    public void LoadHasDailyAndWeeklyCyclesAHolidayDipAndGaps()
    {
        var r = DemoFleet.Resources().First(x => x.Step == TimeSpan.FromHours(1) && x.Kind == Forecaster.Planner.ResourceKind.Service && x.WeekendFactor < 0.8);
        var load = DemoFleet.Samples(r, End).Where(s => s.Metric == r.LoadMetric).ToList();
        Assert.True(load.Count < 35 * 24, "some hours are missing");
        Assert.True(load.Count > 35 * 24 - 30);

        var byHour = load.GroupBy(s => s.Timestamp.Hour).ToDictionary(g => g.Key, g => g.Average(s => s.Value));
        Assert.True(byHour.Values.Max() / byHour.Values.Min() > 1.5, "a daily cycle");
        var weekday = load.Where(s => s.Timestamp.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday)).Average(s => s.Value);
        var weekend = load.Where(s => s.Timestamp.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday).Average(s => s.Value);
        Assert.True(weekend < weekday * 0.9, "a weekly cycle");
        var holiday = End.AddDays(-12).Date;
        var dip = load.Where(s => s.Timestamp.Date == holiday).Average(s => s.Value);
        var weekBefore = load.Where(s => s.Timestamp.Date == holiday.AddDays(-7)).Average(s => s.Value);
        Assert.True(dip < weekBefore * 0.6, "a holiday dip");
    }

    [Fact]
    public async Task SeedingFillsAnEmptyDatabaseOnce()
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("demo"));
        var partitions = new SamplePartitions(db);
        await Forecaster.Api.Database.DatabaseSetup.PrepareAsync(db, partitions, new FakeClock(new DateTimeOffset(End)), NullLogger.Instance, default);
        Assert.True(await DemoSeeder.SeedAsync(db, partitions, new DateTimeOffset(End), NullLogger.Instance, default));
        Assert.False(await DemoSeeder.SeedAsync(db, partitions, new DateTimeOffset(End), NullLogger.Instance, default));

        await using var conn = await db.OpenConnectionAsync();
        Assert.Equal(25, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM resources"));
        // checkout is scraped per minute: about 60 samples an hour.
        var perHour = await conn.ExecuteScalarAsync<double>("""
            SELECT count(*) / (35.0 * 24) FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
            WHERE r.name = 'checkout' AND s.metric = 'qps'
            """);
        Assert.InRange(perHour, 55, 60);
        Assert.Equal(5, await conn.ExecuteScalarAsync<int>("SELECT count(*) FROM series WHERE metric = 'backlog_records'"));
    }
}
