using System.Net.Http.Headers;
using System.Text;
using Dapper;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>The service over HTTP (WebApplicationFactory) on a fresh database of the test cluster, with a fixed clock.</summary>
public class ApiFixture : IAsyncLifetime
{
    public const string ApiKey = "test-key-1";
    public static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    WebApplicationFactory<Program>? _factory;

    public FakeClock Clock { get; } = new(Now);
    public string ConnectionString { get; private set; } = "";
    public WebApplicationFactory<Program> Factory => _factory!;

    /// <summary>Configuration on top of the defaults, e.g. lower body limits.</summary>
    protected virtual IEnumerable<KeyValuePair<string, string?>> Settings => [];

    public virtual async Task InitializeAsync()
    {
        ConnectionString = await TestCluster.CreateDatabaseAsync(GetType().Name);
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", ConnectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiKey);
            foreach (var (key, value) in Settings)
            {
                web.UseSetting(key, value);
            }
            web.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(Clock));
        });
        // Start the host (migrations run at start).
        _ = _factory.Server;
    }

    public virtual Task DisposeAsync()
    {
        _factory?.Dispose();
        NpgsqlConnection.ClearAllPools();
        return Task.CompletedTask;
    }

    /// <summary>A client that sends the API key.</summary>
    public HttpClient Writer()
    {
        var client = Factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", ApiKey);
        return client;
    }

    public HttpClient Reader() => Factory.CreateClient();

    public async Task<long> CountSamplesAsync(string? resource = null)
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        return await conn.ExecuteScalarAsync<long>("""
            SELECT count(*) FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id
            WHERE @resource::text IS NULL OR r.name = @resource
            """, new { resource });
    }

    public async Task<T> ScalarAsync<T>(string sql, object? args = null)
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        return (await conn.ExecuteScalarAsync<T>(sql, args))!;
    }

    public async Task PutServiceAsync(HttpClient client, string name, string metric = "qps", string group = "g")
    {
        var response = await client.PutAsync($"/api/v1/resources/{name}",
            Json($$$"""{"kind":"service","group":"{{{group}}}","loadMetric":"{{{metric}}}","policy":{"minReplicas":1,"maxReplicas":10}}"""));
        response.EnsureSuccessStatusCode();
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static StringContent Csv(string csv) => new(csv, Encoding.UTF8, new MediaTypeHeaderValue("text/csv"));
}
