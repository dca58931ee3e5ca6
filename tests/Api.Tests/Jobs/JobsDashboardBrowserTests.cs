using System.Net;
using System.Net.Sockets;
using Forecaster.Api.Tests.Dashboard;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Playwright;
using Npgsql;

namespace Forecaster.Api.Tests.Jobs;

/// <summary>The service on a real loopback port (Kestrel) and a headless Chromium: nothing trained, the jobs dashboard only.</summary>
public sealed class JobsBrowserFixture : IAsyncLifetime
{
    WebApplicationFactory<Program>? _factory;
    IPlaywright? _playwright;

    public string BaseUrl { get; private set; } = "";
    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumFactAttribute.Path))
        {
            return;
        }
        var db = await TestCluster.CreateDatabaseAsync("jobsbrowser");
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
        });
        _factory.UseKestrel();
        _factory.StartServer();
        BaseUrl = $"http://127.0.0.1:{port}";
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumFactAttribute.Path,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        _playwright?.Dispose();
        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }
        NpgsqlConnection.ClearAllPools();
    }
}

/// <summary>Hangfire's dashboard in a real Chromium: reached from Forecaster's dashboard, read-only until signed in with a key.</summary>
public sealed class JobsDashboardBrowserTests(JobsBrowserFixture fx) : IClassFixture<JobsBrowserFixture>
{
    [ChromiumFact]
    public async Task TheJobsDashboardOpensFromTheNavReadOnlyAndSigningInAllowsTriggering()
    {
        var page = await fx.Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } });
        // The page's requests with their times, for the failure message: a 30 s wait for /jobs failed twice in full runs
        // beside other suites' load and never alone, and the timeout alone does not say which request was still open.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var timeline = new System.Collections.Concurrent.ConcurrentQueue<string>();
        page.Request += (_, r) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: {r.Method} {r.Url}");
        page.RequestFinished += (_, r) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: finished {r.Url}");
        page.RequestFailed += (_, r) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: failed {r.Url} ({r.Failure})");
        page.Load += (_, p) => timeline.Enqueue($"{clock.ElapsedMilliseconds} ms: load event of {p.Url}");
        try
        {
            await page.GotoAsync($"{fx.BaseUrl}/");
            await page.ClickAsync("nav a:text-is('Jobs')");
            await page.WaitForURLAsync($"{fx.BaseUrl}/jobs");
        }
        catch (TimeoutException e)
        {
            throw new Xunit.Sdk.XunitException($"{e.Message}\nat {page.Url}; the page's requests:\n{string.Join('\n', timeline)}");
        }
        Assert.Contains("Forecaster jobs", await page.TitleAsync(), StringComparison.Ordinal);

        // Anonymous from loopback: the recurring nightly job is listed, and nothing can be triggered.
        await page.GotoAsync($"{fx.BaseUrl}/jobs/recurring");
        Assert.Contains("nightly-training", await page.InnerTextAsync("body"), StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("button:has-text('Trigger now')").CountAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(DashboardFixture.Artifacts(), "jobs-recurring.png"), FullPage = true });

        // Signed in with the key (a cookie the page's scripts cannot read): the same page offers the commands.
        await page.GotoAsync($"{fx.BaseUrl}/jobs/sign-in");
        await page.FillAsync("input[name=key]", ApiFixture.ApiKey);
        await page.ClickAsync("button[type=submit]");
        await page.WaitForURLAsync($"{fx.BaseUrl}/jobs");
        Assert.Empty(await page.EvaluateAsync<string>("document.cookie"));
        await page.GotoAsync($"{fx.BaseUrl}/jobs/recurring");
        Assert.True(await page.Locator("button:has-text('Trigger now')").CountAsync() > 0, "a signed-in browser can trigger jobs");
        await page.CloseAsync();
    }
}
