using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Dapper;
using Npgsql;

namespace Forecaster.Api.Database;

/// <summary>One ordered SQL file from db/migrations, named NNNN_name.sql.</summary>
public sealed partial record Migration(int Version, string Name, string Sql)
{
    public string Checksum => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql.ReplaceLineEndings("\n"))));

    /// <summary>The migrations compiled into this executable (db/migrations/*.sql as embedded resources).</summary>
    public static IReadOnlyList<Migration> Embedded { get; } = LoadEmbedded();

    static List<Migration> LoadEmbedded()
    {
        var assembly = Assembly.GetExecutingAssembly();
        var list = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("migrations/", StringComparison.Ordinal)))
        {
            var file = resource["migrations/".Length..];
            var match = MigrationFile().Match(file);
            if (!match.Success)
            {
                throw new InvalidOperationException($"migration file {file} is not named NNNN_name.sql");
            }
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            list.Add(new Migration(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), file, reader.ReadToEnd()));
        }
        return [.. list.OrderBy(m => m.Version)];
    }

    [GeneratedRegex(@"^(\d{4})_[a-z0-9_]+\.sql$")]
    private static partial Regex MigrationFile();
}

/// <summary>
/// Applies migrations in order: a schema_migrations table records version and checksum, an advisory lock keeps
/// two instances from migrating at once, each file runs in its own transaction, and a changed applied file stops
/// everything (editing history silently would leave databases that differ while claiming the same version).
/// </summary>
public static class MigrationRunner
{
    // Any constant shared by all instances; "forecast" in ASCII.
    const long AdvisoryLockKey = 0x666f7265636173;

    public static async Task<int> ApplyAsync(NpgsqlDataSource dataSource, IReadOnlyList<Migration> migrations, ILogger logger, CancellationToken ct = default)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await conn.ExecuteAsync(new CommandDefinition("SELECT pg_advisory_lock(@AdvisoryLockKey)", new { AdvisoryLockKey }, cancellationToken: ct));
        try
        {
            const string createTable = """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """;
            await conn.ExecuteAsync(new CommandDefinition(createTable, cancellationToken: ct));
            var applied = (await conn.QueryAsync<(int Version, string Name, string Checksum)>(
                new CommandDefinition("SELECT version, name, checksum FROM schema_migrations", cancellationToken: ct)))
                .ToDictionary(m => m.Version);

            var count = 0;
            foreach (var migration in migrations)
            {
                if (applied.TryGetValue(migration.Version, out var done))
                {
                    if (done.Checksum != migration.Checksum)
                    {
                        throw new MigrationException(
                            $"Migration {migration.Name} was changed after it was applied to this database " +
                            $"(applied checksum {done.Checksum[..12]}, file checksum {migration.Checksum[..12]}). " +
                            "Restore the original file and put the change in a new migration.");
                    }
                    continue;
                }
                await using var tx = await conn.BeginTransactionAsync(ct);
                await conn.ExecuteAsync(new CommandDefinition(migration.Sql, transaction: tx, cancellationToken: ct, commandTimeout: 0));
                await conn.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (@Version, @Name, @Checksum)",
                    new { migration.Version, migration.Name, migration.Checksum }, tx, cancellationToken: ct));
                await tx.CommitAsync(ct);
                logger.LogInformation("Applied migration {Migration}", migration.Name);
                count++;
            }
            return count;
        }
        finally
        {
            await conn.ExecuteAsync("SELECT pg_advisory_unlock(@AdvisoryLockKey)", new { AdvisoryLockKey });
        }
    }

    /// <summary>True when every migration of this executable is applied (the readiness condition).</summary>
    public static async Task<bool> IsCurrentAsync(NpgsqlConnection conn, IReadOnlyList<Migration> migrations, CancellationToken ct)
    {
        if (await conn.ExecuteScalarAsync<string?>(new CommandDefinition("SELECT to_regclass('schema_migrations')::text", cancellationToken: ct)) is null)
        {
            return false;
        }
        var applied = (await conn.QueryAsync<int>(new CommandDefinition("SELECT version FROM schema_migrations", cancellationToken: ct))).ToHashSet();
        return migrations.All(m => applied.Contains(m.Version));
    }
}

public sealed class MigrationException(string message) : Exception(message);
