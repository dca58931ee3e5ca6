using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Playwright;
using Npgsql;

namespace Forecaster.Api.Tests.Dashboard;

/// <summary>Runs a test only where Debian's Chromium is installed (`.ci/run` and `./forecaster test` install it).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Path = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Path))
        {
            Skip = $"Chromium is not installed at {Path} (apt-get install chromium); the dashboard's browser tests need it";
        }
    }
}

/// <summary>
/// The service on a real port (Kestrel, so a real browser can reach it) with the demo fleet trained and planned, and a
/// headless Chromium driven by Playwright. The clock is the real one: the pages ask for "the last 7 days" by the browser's.
/// </summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    WebApplicationFactory<Program>? _factory;
    IPlaywright? _playwright;
    readonly string _models = TestEnvironment.NewHome("models");

    public string BaseUrl { get; private set; } = "";
    public long SimulationId { get; private set; }
    public IBrowser Browser { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    /// <summary>Where screenshots go: tests/artifacts (git-ignored), kept after the run for a person to look at.</summary>
    public static string Artifacts([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
        Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(here)!, "..", "..", "artifacts")).FullName;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumFactAttribute.Path))
        {
            return;
        }
        var db = await TestCluster.CreateDatabaseAsync("dashboard");
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", db);
            web.UseSetting("urls", $"http://127.0.0.1:{port}");
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.UseSetting("Forecaster:Training:ModelsPath", _models);
            web.UseSetting("Forecaster:Training:LoadBacktestOrigins", "2");
            web.UseSetting("Forecaster:Training:UsageBacktestOrigins", "1");
            web.UseSetting("Forecaster:Training:SchedulerIdleSeconds", "1");
        });
        _factory.UseKestrel();
        _factory.StartServer();
        BaseUrl = $"http://127.0.0.1:{port}";
        Client = new HttpClient { BaseAddress = new Uri(BaseUrl) };
        Client.DefaultRequestHeaders.Add("X-Api-Key", ApiFixture.ApiKey);

        await TestCluster.SeedDemoAsync(db, TimeProvider.System.GetUtcNow());
        var run = await Client.PostAsync("/api/v1/training-runs", ApiFixture.Json("{}"));
        Assert.Equal(HttpStatusCode.Accepted, run.StatusCode);
        var id = (await run.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        for (var i = 0; ; i++)
        {
            var state = await Client.GetFromJsonAsync<JsonElement>($"/api/v1/training-runs/{id}");
            // Planning follows a successful run; the dashboard shows plans, so wait for it too.
            if (state.GetProperty("status").GetString() == "succeeded" && state.TryGetProperty("planning", out var p) && p.GetString() is { Length: > 0 })
            {
                break;
            }
            Assert.True(i < 900, $"training did not finish: {state}");
            await Task.Delay(200);
        }

        var simulation = await Client.PostAsync("/api/v1/simulations",
            ApiFixture.Json("""{"resources":["checkout","search","fraud-scoring"],"policy":{"minReplicas":1,"maxReplicas":40,"targetUtilization":0.7},"trainDays":28}"""));
        Assert.Equal(HttpStatusCode.Accepted, simulation.StatusCode);
        SimulationId = (await simulation.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        for (var i = 0; ; i++)
        {
            var state = await Client.GetFromJsonAsync<JsonElement>($"/api/v1/simulations/{SimulationId}");
            if (state.GetProperty("status").GetString() is "succeeded")
            {
                break;
            }
            Assert.True(i < 900 && state.GetProperty("status").GetString() != "failed", $"simulation did not succeed: {state}");
            await Task.Delay(200);
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Path,
            Headless = true,
            // The flags this workplace's machines need: no sandbox as root, and no background calls to a closed network.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    public async Task<IPage> OpenAsync(string hash, int width = 1400)
    {
        var page = await Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = width, Height = 1000 } });
        await page.GotoAsync($"{BaseUrl}/{hash}");
        await page.WaitForSelectorAsync("#page[data-ready]", new PageWaitForSelectorOptions { Timeout = 30_000 });
        return page;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        _playwright?.Dispose();
        Client?.Dispose();
        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }
        if (Directory.Exists(_models))
        {
            Directory.Delete(_models, recursive: true);
        }
    }
}
