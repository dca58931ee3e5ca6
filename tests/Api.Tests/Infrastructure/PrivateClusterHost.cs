using Forecaster.Api.Database;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>
/// The service on a PostgreSQL cluster of its own, for tests that really stop the server (outages): the shared test
/// cluster must keep running for everyone else. Short timeouts make a missing server show at once.
/// </summary>
public abstract class PrivateClusterHost : IAsyncLifetime
{
    readonly string _home = TestEnvironment.NewHome("private");

    protected EmbeddedPostgres Cluster { get; private set; } = null!;
    protected WebApplicationFactory<Program> Factory { get; private set; } = null!;
    protected string ConnectionString { get; private set; } = "";

    /// <summary>Configuration on top of the database, the API key and the fixed clock.</summary>
    protected virtual IEnumerable<KeyValuePair<string, string?>> Settings => [];

    /// <summary>The clock of the service; <see cref="ApiFixture.Now"/> unless a test needs the wall clock's.</summary>
    protected virtual TimeProvider Clock { get; } = new FakeClock(ApiFixture.Now);

    public virtual async Task InitializeAsync()
    {
        Cluster = EmbeddedPostgres.For(_home, fast: true);
        var (cs, _) = await Cluster.EnsureRunningAsync();
        ConnectionString = new NpgsqlConnectionStringBuilder(cs) { Timeout = 3, CommandTimeout = 10 }.ConnectionString;
        Factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", ConnectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            foreach (var (key, value) in Settings)
            {
                web.UseSetting(key, value);
            }
            web.ConfigureTestServices(s => s.AddSingleton(Clock));
        });
        _ = Factory.Server;
    }

    public virtual async Task DisposeAsync()
    {
        try
        {
            if (Factory is not null)
            {
                await Factory.DisposeAsync();
            }
            NpgsqlConnection.ClearAllPools();
            if (Cluster is not null)
            {
                await Cluster.StopAsync();
            }
        }
        finally
        {
            // Even when the host or the stop failed: a stopped cluster left behind is ~40 MB per test class.
            TestEnvironment.TryDelete(_home);
            if (Cluster is not null)
            {
                TestEnvironment.TryDelete(Path.GetDirectoryName(Cluster.DataDir)!);
            }
        }
    }

    /// <summary>A client that sends the API key.</summary>
    protected HttpClient Writer()
    {
        var client = Factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
        return client;
    }
}
