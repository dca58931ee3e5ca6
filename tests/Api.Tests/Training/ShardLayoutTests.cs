using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Forecaster.Api.Training;
using Npgsql;

namespace Forecaster.Api.Tests.Training;

/// <summary>How a run's resources are dealt into shards (<see cref="TrainingRuns.Layout"/>): every slot in exactly one shard, shards shrinking towards the end.</summary>
public sealed class ShardLayoutTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(16)]
    [InlineData(37)]
    [InlineData(1024)]
    public void EverySlotIsInExactlyOneShardAndShardsNeverGrowTowardsTheEnd(int shards)
    {
        var (slots, bounds) = TrainingRuns.Layout(shards);
        Assert.Equal(64 * shards, slots);
        Assert.Equal(shards + 1, bounds.Length);
        Assert.Equal(0, bounds[0]);
        Assert.Equal(slots, bounds[^1]);
        var sizes = bounds.Zip(bounds.Skip(1), (from, to) => to - from).ToArray();
        Assert.All(sizes, size => Assert.True(size > 0, $"an empty shard in [{string.Join(", ", sizes)}]"));
        // Rounding may move a slot between neighbours, never more.
        for (int s = 1; s < shards; s++)
        {
            Assert.True(sizes[s] <= sizes[s - 1] + 1, $"shard {s} ({sizes[s]} slots) is larger than shard {s - 1} ({sizes[s - 1]})");
        }
    }

    [Theory]
    [InlineData(1, 1.0)]
    [InlineData(2, 1.0)]
    [InlineData(4, 2.0)]
    [InlineData(8, 4.0)]
    [InlineData(16, 8.0)]
    [InlineData(64, 8.0)]
    public void TheFirstShardIsTheShardCountOverTwoTimesTheLastBetweenOneAndEight(int shards, double ratio)
    {
        var (_, bounds) = TrainingRuns.Layout(shards);
        double first = bounds[1] - bounds[0], last = bounds[^1] - bounds[^2];
        Assert.InRange(first / last, ratio * 0.97, ratio * 1.03);
    }

    [Fact]
    public async Task ASmallFleetIsDealtIntoEveryShardAndEachResourceIntoExactlyOne()
    {
        // The demo's 25 resources have ids 1 to 25, far fewer than the 384 slots of 6 shards: their slots must still spread
        // over every shard's range (a plain id modulo 384 would put all of them in the first).
        var db = await TestCluster.CreateDatabaseAsync("layout");
        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        await using var source = NpgsqlDataSource.Create(db);
        var (created, _) = await TrainingRuns.CreateAsync(source, "api", null, TimeProvider.System.GetUtcNow(), CancellationToken.None);
        var id = created!.Value;
        Assert.Equal([0, 1, 2, 3, 4, 5], await TrainingRuns.StartAsync(source, id, 6, TimeProvider.System.GetUtcNow(), CancellationToken.None));

        await using var conn = await source.OpenConnectionAsync();
        var shards = (await conn.QueryAsync<(int Shard, int Total)>(
            "SELECT shard, series_total FROM training_shards WHERE run_id = @id ORDER BY shard", new { id })).ToList();
        Assert.Equal(6, shards.Count);
        Assert.All(shards, s => Assert.True(s.Total > 0, $"shard {s.Shard} has no series: [{string.Join(", ", shards.Select(x => x.Total))}]"));
        // Every resource with a series to train falls in exactly one shard's range.
        var slot = TrainingRuns.SlotOf.Replace("@slots", "tr.shard_slots", StringComparison.Ordinal);
        var dealt = (await conn.QueryAsync<(int Resource, int Shards)>($"""
            SELECT r.id, count(sh.shard)::int
            FROM resources r JOIN training_runs tr ON tr.id = @id
            LEFT JOIN training_shards sh ON sh.run_id = tr.id AND {slot} >= sh.slot_from AND {slot} < sh.slot_to
            GROUP BY r.id
            """, new { id })).ToList();
        Assert.Equal(25, dealt.Count);
        Assert.All(dealt, d => Assert.Equal(1, d.Shards));
        Assert.Equal(await conn.ExecuteScalarAsync<int>("SELECT series_total FROM training_runs WHERE id = @id", new { id }), shards.Sum(s => s.Total));
    }
}
