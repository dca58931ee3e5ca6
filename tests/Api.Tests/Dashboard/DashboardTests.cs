using System.Net.Http.Json;
using Microsoft.Playwright;

namespace Forecaster.Api.Tests.Dashboard;

/// <summary>The dashboard in a real headless Chromium against the trained and planned demo fleet.</summary>
public sealed partial class DashboardTests(DashboardFixture fx) : IClassFixture<DashboardFixture>
{
    static async Task<int> PointsAsync(IPage page, string canvas) =>
        int.Parse(await page.GetAttributeAsync(canvas, "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture);

    static Task ShotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(DashboardFixture.Artifacts(), $"dashboard-{name}.png"), FullPage = true });

    [ChromiumFact]
    public async Task TheFleetPageListsEveryResourceAndNavigatesToOne()
    {
        // The demo's 25 plus whatever the edge-case tests of this class registered before this one ran.
        var total = (await fx.Client.GetFromJsonAsync<System.Text.Json.JsonElement>("/api/v1/resources?limit=1000")).GetProperty("items").GetArrayLength();
        var page = await fx.OpenAsync("#/");
        Assert.Equal(total, await page.Locator("#fleet tbody tr").CountAsync());
        Assert.Contains($"{total} of {total} resources", await page.InnerTextAsync("#fleet-count"), StringComparison.Ordinal);
        // Models and their backtest are shown against seasonal naive's.
        Assert.Matches(@"\d\.\d+ / \d\.\d+", await page.InnerTextAsync("#fleet tbody tr[data-resource='checkout'] td:nth-child(7)"));
        // The desired count now and its source, as the serving endpoint answers it.
        var current = await fx.Client.GetFromJsonAsync<System.Text.Json.JsonElement>("/api/v1/resources/checkout/plan/current");
        Assert.Equal($"{current.GetProperty("replicas").GetInt32()} replicas", await page.InnerTextAsync("#fleet tbody tr[data-resource='checkout'] td.desired"));
        await ShotAsync(page, "fleet");
        await page.FillAsync("#search", "fraud");
        Assert.Equal(1, await page.Locator("#fleet tbody tr").CountAsync());

        await page.ClickAsync("#fleet a:text-is('fraud-scoring')");
        await page.WaitForSelectorAsync("#load-chart[data-points]");
        Assert.EndsWith("#/resources/fraud-scoring", page.Url, StringComparison.Ordinal);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheResourcePageDrawsLoadForecastAndPlanWithTheModelHistory()
    {
        var page = await fx.OpenAsync("#/resources/checkout");
        // 7 days of hourly observations plus 48 forecast hours (point and both bounds) plus the plan's steps.
        Assert.True(await PointsAsync(page, "#load-chart") > 7 * 24, "the load chart has its data");
        Assert.True(await PointsAsync(page, "#plan-chart") >= 48, "the plan chart has its steps");
        Assert.True(await page.Locator("#models tbody tr").CountAsync() >= 3, "model versions of qps, cpu and memory");
        Assert.Contains("48 hourly steps", await page.InnerTextAsync("#page"), StringComparison.Ordinal);
        // Why the current step is what it is, in words.
        Assert.Contains("planned", await page.InnerTextAsync("#explanation"), StringComparison.Ordinal);
        await ShotAsync(page, "resource");
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheCapacityPageChartsPlannedCpuAndMemoryForAGroup()
    {
        var page = await fx.OpenAsync("#/capacity?group=shop");
        Assert.True(await PointsAsync(page, "#cpu-chart") >= 48);
        Assert.True(await PointsAsync(page, "#memory-chart") >= 48);
        Assert.Matches(@"Peak planned cpu [\d.,]+ cores", await page.InnerTextAsync("#capacity-summary"));
        await ShotAsync(page, "capacity");
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheTrainingPageShowsTheRunThatTrainedTheFleet()
    {
        var page = await fx.OpenAsync("#/training");
        Assert.True(await page.Locator("#runs tr[data-status='succeeded']").CountAsync() >= 1);
        Assert.Contains("75/75", await page.InnerTextAsync("#runs"), StringComparison.Ordinal);
        await ShotAsync(page, "training");
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheSimulationPageChartsCostRiskAndTheReplayedDays()
    {
        var page = await fx.OpenAsync("#/simulations");
        await page.ClickAsync($"#simulations a:text-is('#{fx.SimulationId}')");
        await page.WaitForSelectorAsync("#days-chart[data-points]");
        // One row and bar per strategy: predictive, predictive+reactive, reactive, static-peak, yesterday, oracle.
        Assert.Equal(6, await page.Locator("#totals tbody tr").CountAsync());
        Assert.Equal(6, await PointsAsync(page, "#cost-chart"));
        Assert.Equal(6, await PointsAsync(page, "#risk-chart"));
        // Every replayed day: the need and each of the 6 strategies, as the report has them.
        var report = (await fx.Client.GetFromJsonAsync<System.Text.Json.JsonElement>($"/api/v1/simulations/{fx.SimulationId}")).GetProperty("report");
        var days = report.GetProperty("days").GetArrayLength();
        Assert.True(days >= 5, "about a week is replayed");
        Assert.Equal(7 * days, await PointsAsync(page, "#days-chart"));
        Assert.Contains($"3 series, {report.GetProperty("seriesDays").GetInt32()} series-days replayed", await page.InnerTextAsync("#simulation-summary"), StringComparison.Ordinal);
        await ShotAsync(page, "simulation");
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task AnApiErrorShowsAReadableMessage()
    {
        var page = await fx.OpenAsync("#/resources/no-such-service");
        Assert.Equal("error", await page.GetAttributeAsync("#page", "data-ready"));
        Assert.Contains("No resource is named 'no-such-service'", await page.InnerTextAsync("#error"), StringComparison.Ordinal);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task SwaggerUiRendersEveryOperationUnderTheSecurityHeaders()
    {
        var page = await fx.Browser.NewPageAsync();
        var refused = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                refused.Add(message.Text);
            }
        };
        var response = await page.GotoAsync($"{fx.BaseUrl}/swagger/index.html");
        Assert.Equal("DENY", await response!.HeaderValueAsync("x-frame-options"));
        await page.WaitForSelectorAsync(".opblock-summary");
        Assert.True(await page.Locator(".opblock").CountAsync() >= 10);
        Assert.Empty(refused);
        await page.CloseAsync();
    }
}
