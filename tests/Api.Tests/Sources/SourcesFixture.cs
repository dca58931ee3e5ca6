using System.Net;
using System.Net.Sockets;
using Forecaster.Api.Sources;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Sources;

/// <summary>The synthetic history the test Prometheus holds: daily and weekly cycles, a function of the unix second.</summary>
public static class SyntheticLoad
{
    public static double Load(long t, double level) =>
        level + 0.4 * level * Math.Sin(2 * Math.PI * t / 86_400.0) + 0.15 * level * Math.Sin(2 * Math.PI * t / 604_800.0);

    public static readonly Dictionary<string, Func<long, double>> Series = new()
    {
        ["load{service=\"checkout\"}"] = t => Load(t, 200),
        ["cpu{service=\"checkout\"}"] = t => 0.5 + 0.01 * Load(t, 200),
        ["http_load{service=\"svc-a\"}"] = t => Load(t, 100),
        ["http_load{service=\"svc-b\"}"] = t => Load(t, 200),
        ["http_load{service=\"svc-c\"}"] = t => Load(t, 300),
        ["dup{pod=\"a\"}"] = t => Load(t, 10),
        ["dup{pod=\"b\"}"] = t => Load(t, 20),
        ["steady{service=\"steady\"}"] = t => Load(t, 50),
        ["batch_load{service=\"batch-a\"}"] = t => Load(t, 60),
        ["batch_load{service=\"batch-b\"}"] = t => Load(t, 70),
        ["batch_load{service=\"batch-c\"}"] = t => Load(t, 80),
        ["batch_load{service=\"batch-d\"}"] = t => Load(t, 90),
        // Ordinary values but for one hour of the sentinel the poisoning trigger refuses.
        ["batch_load{service=\"batch-poisoned\"}"] = t => t >= NaNHour && t < NaNHour + 3600 ? PoisonedValue : Load(t, 100),
        ["pushed{service=\"pushed\"}"] = t => Load(t, 120),
        ["gappy{service=\"gappy\"}"] = t => t >= NaNHour && t < NaNHour + 3600 ? double.NaN
            : t >= NaNHour + 3600 && t < NaNHour + 7200 ? (t % 120 == 0 ? double.PositiveInfinity : double.NegativeInfinity)
            : Load(t, 30),
    };

    /// <summary>A value PostgreSQL refuses in the test that installs a trigger for it: a database error on one series' rows.</summary>
    public const double PoisonedValue = 4242.5;

    /// <summary>`gappy` is NaN for this hour and ±Inf for the next: gaps, not values.</summary>
    public static readonly long NaNHour = ApiFixture.Now.AddDays(-2).ToUnixTimeSeconds();
}

/// <summary>
/// One Prometheus over 15 days of synthetic history (and 6 hours past the fixed clock, for the pulls after it), and the
/// service on a real port (so a second Prometheus can scrape its /metrics) with its own database and a fixed clock.
/// Pulls run only when a test calls the pull round, so each test sees exactly the rounds it starts.
/// </summary>
public sealed class SourcesFixture : IAsyncLifetime
{
    public static readonly DateTimeOffset Now = ApiFixture.Now;
    public const int BackfillDays = 14;

    WebApplicationFactory<Program>? _factory;
    readonly string _models = TestEnvironment.NewHome("models");

    public FakeClock Clock { get; } = new(Now);
    public PrometheusServer Prometheus { get; private set; } = null!;
    public string ConnectionString { get; private set; } = "";
    public string BaseUrl { get; private set; } = "";
    public HttpClient Client { get; private set; } = null!;
    public SourcePuller Puller => _factory!.Services.GetRequiredService<SourcePuller>();

    public async Task InitializeAsync()
    {
        if (!PrometheusFactAttribute.Installed)
        {
            return;
        }
        Prometheus = await PrometheusServer.StartAsync(SyntheticLoad.Series, Now.AddDays(-15), Now.AddHours(6), TimeSpan.FromMinutes(1));
        ConnectionString = await TestCluster.CreateDatabaseAsync("sources");
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", ConnectionString);
            web.UseSetting("urls", $"http://127.0.0.1:{port}");
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Prometheus:Url", Prometheus.Url);
            web.UseSetting("Forecaster:Prometheus:BackfillDays", BackfillDays.ToString(System.Globalization.CultureInfo.InvariantCulture));
            web.UseSetting("Forecaster:Prometheus:Puller", "false");
            web.UseSetting("Forecaster:Prometheus:Retries", "1");
            web.UseSetting("Forecaster:Prometheus:TimeoutSeconds", "5");
            web.UseSetting("Forecaster:Training:ModelsPath", _models);
            web.UseSetting("Forecaster:Training:LoadBacktestOrigins", "2");
            web.UseSetting("Forecaster:Training:UsageBacktestOrigins", "1");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
            web.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(Clock));
        });
        _factory.UseKestrel();
        _factory.StartServer();
        BaseUrl = $"http://127.0.0.1:{port}";
        Client = new HttpClient { BaseAddress = new Uri(BaseUrl) };
        Client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        _factory?.Dispose();
        NpgsqlConnection.ClearAllPools();
        if (Prometheus is not null)
        {
            await Prometheus.DisposeAsync();
        }
        if (Directory.Exists(_models))
        {
            Directory.Delete(_models, recursive: true);
        }
    }
}
