using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;

namespace Forecaster.Api.Database;

/// <summary>
/// The private PostgreSQL cluster used when no connection string is configured: initdb + pg_ctl from the
/// machine's server binaries, data under FORECASTER_HOME, loopback only, password auth. Every process on
/// the machine (the service, each CLI verb, a test run) shares one cluster per home: whoever needs it
/// first starts it, the others connect to the running one.
/// </summary>
public sealed class EmbeddedPostgres
{
    public const string DatabaseName = "forecaster";
    const string SuperUser = "forecaster";

    readonly string _bin;
    readonly bool _asPostgresUser;
    readonly bool _fast;

    EmbeddedPostgres(string home, string dataDir, string bin, bool asPostgresUser, bool fast)
    {
        Home = home;
        DataDir = dataDir;
        _bin = bin;
        _asPostgresUser = asPostgresUser;
        _fast = fast;
    }

    public string Home { get; }
    public string DataDir { get; }
    string StatePath => Path.Combine(Home, "cluster.json");

    /// <summary>FORECASTER_HOME, or ~/.forecaster.</summary>
    public static string DefaultHome() =>
        Environment.GetEnvironmentVariable("FORECASTER_HOME") is { Length: > 0 } home
            ? Path.GetFullPath(home)
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".forecaster");

    /// <summary>
    /// Locates the server binaries and the data directory for <paramref name="home"/>.
    /// <paramref name="fast"/> turns off fsync: for throwaway test clusters only.
    /// </summary>
    public static EmbeddedPostgres For(string home, bool fast = false)
    {
        var bin = FindBinaries() ?? throw new EmbeddedPostgresException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. " +
            "Install them (Debian/Ubuntu: `sudo apt-get install postgresql`), or set FORECASTER_DB to the connection " +
            "string of an existing server.");
        Directory.CreateDirectory(home);
        var asRoot = IsRoot();
        var dataDir = Path.Combine(home, "postgres", "data");
        if (asRoot)
        {
            // PostgreSQL refuses to run as root; the cluster belongs to the `postgres` OS user, which must be
            // able to reach the data directory. A home under /root is not reachable, so such a cluster lives
            // under /var/lib/forecaster, keyed by the home path, and cluster.json says where.
            if (!CanPostgresUserReach(home))
            {
                var key = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(home)))[..12];
                dataDir = Path.Combine("/var/lib/forecaster", key, "data");
            }
        }
        return new EmbeddedPostgres(home, dataDir, bin, asRoot, fast);
    }

    /// <summary>Starts the cluster unless it runs already; returns its connection string and whether this call started it.</summary>
    public async Task<(string ConnectionString, bool StartedHere)> EnsureRunningAsync(CancellationToken ct = default)
    {
        // One process at a time decides whether to init or start (another verb may be doing it right now).
        await using var gate = await FileGate.AcquireAsync(Path.Combine(Home, "cluster.lock"), TimeSpan.FromMinutes(2), ct);
        var state = await ReadStateAsync(ct);
        if (state is null || !File.Exists(Path.Combine(DataDir, "PG_VERSION")))
        {
            state = await InitAsync(ct);
        }

        var started = false;
        var port = RunningPort();
        if (port is null)
        {
            port = await StartAsync(state.Port, ct);
            state = state with { Port = port };
            await WriteStateAsync(state, ct);
            started = true;
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = port.Value,
            Username = SuperUser,
            Password = state.Password,
            Database = "postgres",
            Pooling = false,
        };
        await using (var conn = new NpgsqlConnection(builder.ConnectionString))
        {
            await conn.OpenAsync(ct);
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @n", conn);
            exists.Parameters.AddWithValue("n", DatabaseName);
            if (await exists.ExecuteScalarAsync(ct) is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE {DatabaseName}", conn);
                await create.ExecuteNonQueryAsync(ct);
            }
        }
        builder.Database = DatabaseName;
        builder.Pooling = true;
        return (builder.ConnectionString, started);
    }

    /// <summary>The port of the running cluster, or null when it is not running.</summary>
    public int? RunningPort()
    {
        var (exit, _) = Run("pg_ctl", ["status", "-D", DataDir], check: false);
        if (exit != 0)
        {
            return null;
        }
        // postmaster.pid: line 4 is the port (PostgreSQL's documented lock-file layout).
        var lines = ReadPidFile();
        return lines.Length > 3 && int.TryParse(lines[3], CultureInfo.InvariantCulture, out var port) ? port : null;
    }

    public ClusterStatus Status()
    {
        var port = RunningPort();
        var lines = port is null ? [] : ReadPidFile();
        var pid = lines.Length > 0 && int.TryParse(lines[0], CultureInfo.InvariantCulture, out var p) ? p : (int?)null;
        var version = File.Exists(Path.Combine(DataDir, "PG_VERSION")) ? File.ReadAllText(Path.Combine(DataDir, "PG_VERSION")).Trim() : null;
        return new ClusterStatus(port is not null, DataDir, port, pid, version);
    }

    public async Task StopAsync(CancellationToken ct = default)
    {
        await using var gate = await FileGate.AcquireAsync(Path.Combine(Home, "cluster.lock"), TimeSpan.FromMinutes(2), ct);
        if (RunningPort() is not null)
        {
            Run("pg_ctl", ["stop", "-D", DataDir, "-m", "fast", "-w", "-t", "60"], check: true);
        }
    }

    async Task<ClusterState> InitAsync(CancellationToken ct)
    {
        if (Directory.Exists(DataDir) && Directory.EnumerateFileSystemEntries(DataDir).Any())
        {
            throw new EmbeddedPostgresException(
                $"{DataDir} is not empty but holds no usable cluster (or {StatePath} is missing). Move it away to start afresh.");
        }
        Directory.CreateDirectory(DataDir);
        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var pwFile = Path.Combine(Path.GetDirectoryName(DataDir)!, ".pwfile");
        await File.WriteAllTextAsync(pwFile, password + "\n", ct);
        try
        {
            if (_asPostgresUser)
            {
                Run("chown", ["-R", "postgres:postgres", Path.GetDirectoryName(DataDir)!], check: true, asPostgres: false);
            }
            Run("initdb", ["-D", DataDir, "-U", SuperUser, "--auth=scram-sha-256", $"--pwfile={pwFile}", "-E", "UTF8", "--no-locale", "--no-instructions"], check: true);
        }
        finally
        {
            File.Delete(pwFile);
        }
        // Loopback TCP only: no Unix socket, so the socket directory's permissions never matter.
        var conf = """

            # Forecaster embedded cluster
            listen_addresses = '127.0.0.1'
            unix_socket_directories = ''
            max_connections = 200
            shared_buffers = 256MB
            max_wal_size = 4GB
            timezone = 'UTC'
            log_timezone = 'UTC'
            """;
        await File.AppendAllTextAsync(Path.Combine(DataDir, "postgresql.conf"), conf.Replace("\r", "", StringComparison.Ordinal) + "\n", ct);
        var state = new ClusterState(password, DataDir, null);
        await WriteStateAsync(state, ct);
        return state;
    }

    /// <summary>Starts the server on its previous port when that is free (clients holding the old address reconnect), else on a new one.</summary>
    async Task<int> StartAsync(int? previousPort, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = attempt == 1 && previousPort is { } p && IsFree(p) ? p : FreeLoopbackPort();
            var options = $"-p {port}" + (_fast ? " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" : "");
            var (exit, output) = Run("pg_ctl", ["start", "-D", DataDir, "-w", "-t", "60", "-l", Path.Combine(DataDir, "server.log"), "-o", options], check: false);
            if (exit == 0)
            {
                return port;
            }
            // Another process may have taken the port between our probe and the server's bind: retry.
            if (attempt == 3)
            {
                var log = File.Exists(Path.Combine(DataDir, "server.log")) ? File.ReadLines(Path.Combine(DataDir, "server.log")).TakeLast(20) : [];
                throw new EmbeddedPostgresException($"pg_ctl start failed: {output}\n{string.Join('\n', log)}");
            }
            await Task.Delay(200, ct);
        }
    }

    string[] ReadPidFile()
    {
        try
        {
            return File.ReadAllLines(Path.Combine(DataDir, "postmaster.pid"));
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    async Task WriteStateAsync(ClusterState state, CancellationToken ct)
    {
        await File.WriteAllTextAsync(StatePath, JsonSerializer.Serialize(state), ct);
        if (!OperatingSystem.IsWindows())
        {
            // It holds the superuser's password.
            File.SetUnixFileMode(StatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    async Task<ClusterState?> ReadStateAsync(CancellationToken ct)
    {
        if (!File.Exists(StatePath))
        {
            return null;
        }
        return JsonSerializer.Deserialize<ClusterState>(await File.ReadAllTextAsync(StatePath, ct));
    }

    (int Exit, string Output) Run(string tool, string[] args, bool check, bool asPostgres = true)
    {
        var file = tool is "chown" or "runuser" ? tool : Path.Combine(_bin, tool);
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (_asPostgresUser && asPostgres)
        {
            psi.FileName = "runuser";
            foreach (var a in (string[])["-u", "postgres", "--", file, .. args])
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = file;
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }
        }
        using var process = Process.Start(psi) ?? throw new EmbeddedPostgresException($"could not start {file}");
        // Read both streams concurrently: pg_ctl start leaves the server holding nothing of ours, but a
        // chatty initdb could fill one pipe while we wait on the other.
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var output = (stdout + stderr.GetAwaiter().GetResult()).Trim();
        if (check && process.ExitCode != 0)
        {
            throw new EmbeddedPostgresException($"{tool} {string.Join(' ', args)} failed ({process.ExitCode}): {output}");
        }
        return (process.ExitCode, output);
    }

    static string? FindBinaries()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl")))
            {
                // Debian links /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb; keep the real folder so
                // pg_ctl finds the `postgres` binary beside it.
                var target = new FileInfo(Path.Combine(dir, "initdb")).ResolveLinkTarget(returnFinalTarget: true);
                return target is null ? dir : Path.GetDirectoryName(target.FullName);
            }
        }
        const string debian = "/usr/lib/postgresql";
        if (!Directory.Exists(debian))
        {
            return null;
        }
        return Directory.GetDirectories(debian)
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var v) ? v : 0))
            .Where(x => File.Exists(Path.Combine(x.Dir, "initdb")))
            .OrderByDescending(x => x.Version)
            .Select(x => x.Dir)
            .FirstOrDefault();
    }

    static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // Environment.UserName is the effective user's name on Unix.
    static bool IsRoot() => !OperatingSystem.IsWindows() && Environment.UserName == "root";

    static bool CanPostgresUserReach(string home)
    {
        var psi = new ProcessStartInfo("runuser", ["-u", "postgres", "--", "test", "-x", home]) { UseShellExecute = false };
        using var p = Process.Start(psi);
        p?.WaitForExit();
        return p?.ExitCode == 0;
    }

    sealed record ClusterState(string Password, string DataDir, int? Port);
}

public sealed record ClusterStatus(bool Running, string DataDir, int? Port, int? Pid, string? Version);

public sealed class EmbeddedPostgresException(string message) : Exception(message);
