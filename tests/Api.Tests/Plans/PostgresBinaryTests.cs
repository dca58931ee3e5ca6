using Dapper;
using Forecaster.Api.Database;
using Forecaster.Api.Tests.Infrastructure;
using Npgsql;
using NpgsqlTypes;

namespace Forecaster.Api.Tests.Plans;

/// <summary>
/// The binary forms planning writes itself (a plan version's notes as text[]) are stored exactly as the same values written
/// by Npgsql's own array writer, on a real server.
/// </summary>
public sealed class PostgresBinaryTests
{
    public static TheoryData<string[]> Notes => new()
    {
        Array.Empty<string>(),
        new[] { "no capacity model: the policy's capacityPerReplica is used" },
        new[] { "", "two notes", "ünïcödé → 容量, and a \"quote\", a comma, {braces} and a backslash \\", "NULL" },
    };

    [Theory]
    [MemberData(nameof(Notes))]
    public async Task TextArrayStoresWhatNpgsqlsArrayWriterStores(string[] notes)
    {
        await using var db = NpgsqlDataSource.Create(await TestCluster.CreateDatabaseAsync("pgbinary"));
        await using var conn = await db.OpenConnectionAsync();
        await conn.ExecuteAsync("CREATE TABLE t (k int PRIMARY KEY, notes text[] NOT NULL)");
        await using (var copy = await conn.BeginBinaryImportAsync("COPY t (k, notes) FROM STDIN (FORMAT BINARY)"))
        {
            await copy.StartRowAsync();
            await copy.WriteAsync(1, NpgsqlDbType.Integer);
            await copy.WriteAsync(PostgresBinary.TextArray(notes), NpgsqlDbType.Bytea);
            await copy.StartRowAsync();
            await copy.WriteAsync(2, NpgsqlDbType.Integer);
            await copy.WriteAsync(notes, NpgsqlDbType.Array | NpgsqlDbType.Text);
            await copy.CompleteAsync();
        }
        var stored = (await conn.QueryAsync<(int K, string[] Notes, string Text, int? Dims)>(
            "SELECT k, notes, notes::text, array_ndims(notes) FROM t ORDER BY k")).ToList();
        Assert.Equal(notes, stored[0].Notes);
        Assert.Equal(stored[1].Text, stored[0].Text);
        Assert.Equal(stored[1].Dims, stored[0].Dims);
        Assert.True(await conn.ExecuteScalarAsync<bool>("SELECT (SELECT notes FROM t WHERE k = 1) = (SELECT notes FROM t WHERE k = 2)"));
    }
}
