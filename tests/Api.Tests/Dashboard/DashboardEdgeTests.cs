using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Forecaster.Api.Tests.Dashboard;

/// <summary>
/// The rough edges of issue 18, each with the browser test that would have caught it. Resources made here live in the
/// group "edge" (named after what they show), so the demo fleet's own pages stay as seeded.
/// </summary>
public sealed partial class DashboardTests
{
    static string Hour(DateTimeOffset t) => t.ToString("yyyy-MM-ddTHH:00:00Z", CultureInfo.InvariantCulture);

    async Task PutAsync(string name, string policy)
    {
        var put = await fx.Client.PutAsync($"/api/v1/resources/{name}", ApiFixture.Json($$"""{"kind":"service","group":"edge","loadMetric":"qps","policy":{{policy}}}"""));
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
    }

    async Task SamplesAsync(string name, IEnumerable<int> hoursAgo)
    {
        var now = TimeProvider.System.GetUtcNow();
        var samples = string.Join(",", hoursAgo.Select(h => $$"""{"metric":"qps","timestamp":"{{Hour(now.AddHours(-h))}}","value":{{100 + h}}}"""));
        var post = await fx.Client.PostAsync($"/api/v1/resources/{name}/samples", ApiFixture.Json($$"""{"samples":[{{samples}}]}"""));
        Assert.True(post.IsSuccessStatusCode, await post.Content.ReadAsStringAsync());
    }

    static async Task<string> AttrAsync(IPage page, string selector, string name) => await page.GetAttributeAsync(selector, name) ?? "";

    [ChromiumFact]
    public async Task MaseHasThreeDecimalsAndTheFlagOnlyWhereTheModelIsWorseAtThem()
    {
        var page = await fx.OpenAsync("#/");
        var rows = page.Locator("#fleet tbody tr");
        var checkedRows = 0;
        for (var i = 0; i < await rows.CountAsync(); i++)
        {
            var mase = await rows.Nth(i).Locator("td:nth-child(7)").InnerTextAsync();
            if (mase == "—")
            {
                continue;
            }
            var m = Regex.Match(mase, @"^(\d+\.\d{3}) / (\d+\.\d{3}) \(\d+\.\d{2}×\)$");
            Assert.True(m.Success, $"MASE not at a fixed precision: '{mase}'");
            var worse = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) > double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            var flags = await rows.Nth(i).Locator("td:nth-child(8)").InnerTextAsync();
            Assert.True(worse == flags.Contains("worse than seasonal naive", StringComparison.Ordinal), $"'{mase}' with flags '{flags}'");
            checkedRows++;
        }
        Assert.True(checkedRows >= 20, "the demo fleet's models are shown");
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheBandsLowerEdgeDrawsButHasNoLegendEntry()
    {
        var page = await fx.OpenAsync("#/resources/checkout");
        Assert.Contains("forecast lower bound", await AttrAsync(page, "#load-chart", "data-series"), StringComparison.Ordinal);
        var legend = await AttrAsync(page, "#load-chart", "data-legend");
        Assert.DoesNotContain("forecast lower bound", legend, StringComparison.Ordinal);
        Assert.Contains("forecast band", legend, StringComparison.Ordinal);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task AGapInTheObservationsBreaksTheLine()
    {
        await PutAsync("edge-gap", """{"minReplicas":1,"maxReplicas":10,"capacityPerReplica":50}""");
        // Hours 30..21 and 10..1 ago: ten hours missing in between.
        await SamplesAsync("edge-gap", Enumerable.Range(21, 10).Concat(Enumerable.Range(1, 10)));
        var page = await fx.OpenAsync("#/resources/edge-gap");
        Assert.Equal("1", await AttrAsync(page, "#load-chart", "data-gaps"));
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task AnAppliedWindowIsNamedByItsDaysAndHours()
    {
        await PutAsync("edge-window", """{"minReplicas":1,"maxReplicas":10,"windows":[{"days":"Mon-Sun","from":"00:00","to":"24:00","timeZone":"Europe/Berlin","minReplicas":3}]}""");
        var page = await fx.OpenAsync("#/resources/edge-window");
        var sentence = await page.InnerTextAsync("#explanation");
        Assert.Contains("window Mon,Tue,Wed,Thu,Fri,Sat,Sun 00:00-24:00 Europe/Berlin: min 3 applied", sentence, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"window \d+ applied", sentence);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task WithoutCapacityThePageSaysWhyThereIsNoPlannedLineAndHowToGetOne()
    {
        await PutAsync("edge-nocap", """{"minReplicas":2,"maxReplicas":10}""");
        await SamplesAsync("edge-nocap", Enumerable.Range(1, 30));
        var page = await fx.OpenAsync("#/resources/edge-nocap");
        var hint = await page.InnerTextAsync("#capacity-hint");
        Assert.Contains("policy.capacityPerReplica", hint, StringComparison.Ordinal);
        Assert.Contains("cpu_cores", hint, StringComparison.Ordinal);
        Assert.DoesNotContain("planned capacity", await AttrAsync(page, "#load-chart", "data-series"), StringComparison.Ordinal);
        // A resource that has one shows no hint.
        var checkout = await fx.OpenAsync("#/resources/checkout");
        Assert.Equal(0, await checkout.Locator("#capacity-hint").CountAsync());
        await page.CloseAsync();
        await checkout.CloseAsync();
    }

    [ChromiumFact]
    public async Task AResourceWithoutPlanOrDataShowsNoEmptyChart()
    {
        await PutAsync("edge-bare", "{}");
        var page = await fx.OpenAsync("#/resources/edge-bare");
        Assert.Equal(0, await page.Locator("#plan-chart").CountAsync());
        Assert.Equal(0, await page.Locator("#load-chart").CountAsync());
        Assert.Contains("No plan yet", await page.InnerTextAsync("#no-plan"), StringComparison.Ordinal);
        Assert.Contains("No qps observed", await page.InnerTextAsync("#no-load"), StringComparison.Ordinal);
        // Wherever a chart is drawn at all, it has points (no 1970-01-01 axis over nothing).
        foreach (var hash in new[] { "#/resources/edge-bare", "#/resources/checkout", "#/capacity" })
        {
            var p = await fx.OpenAsync(hash);
            foreach (var canvas in await p.Locator("canvas").AllAsync())
            {
                Assert.True(int.Parse(await canvas.GetAttributeAsync("data-points") ?? "0", CultureInfo.InvariantCulture) > 0, $"{hash}: an empty chart");
            }
            await p.CloseAsync();
        }
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task CapacityOpensOnTheWholeFleetAndShowsQuotaOnlyWhereSet()
    {
        // A CSV import creates resources without a group: the page must not open on "(none)".
        var csv = await fx.Client.PostAsync("/api/v1/samples?createResources=true",
            ApiFixture.Csv($"resource,metric,timestamp,value\nedge-imported,qps,{Hour(TimeProvider.System.GetUtcNow().AddHours(-2))},5\n"));
        Assert.True(csv.IsSuccessStatusCode, await csv.Content.ReadAsStringAsync());
        var page = await fx.OpenAsync("#/capacity");
        Assert.Equal("*", await page.EvalOnSelectorAsync<string>("#capacity-group", "s => s.value"));
        Assert.Contains("(whole fleet)", await page.InnerTextAsync("#capacity-summary"), StringComparison.Ordinal);
        Assert.DoesNotContain("quota", await AttrAsync(page, "#cpu-chart", "data-series"), StringComparison.Ordinal);
        await page.CloseAsync();

        // A group without a quota: no quota line nor legend entry; the whole fleet beside it, for memory too.
        page = await fx.OpenAsync("#/capacity?group=shop");
        Assert.DoesNotContain("quota", await AttrAsync(page, "#cpu-chart", "data-legend"), StringComparison.Ordinal);
        Assert.DoesNotContain("quota", await AttrAsync(page, "#memory-chart", "data-legend"), StringComparison.Ordinal);
        Assert.Contains("planned memory, whole fleet", await AttrAsync(page, "#memory-chart", "data-legend"), StringComparison.Ordinal);
        Assert.Contains("planned cpu, whole fleet", await AttrAsync(page, "#cpu-chart", "data-legend"), StringComparison.Ordinal);
        await page.CloseAsync();

        var quota = await fx.Client.PutAsync("/api/v1/groups/growth/quota", ApiFixture.Json("""{"cpuCores":400,"memoryBytes":1099511627776}"""));
        Assert.True(quota.IsSuccessStatusCode, await quota.Content.ReadAsStringAsync());
        page = await fx.OpenAsync("#/capacity?group=growth");
        Assert.Contains("cpu quota", await AttrAsync(page, "#cpu-chart", "data-legend"), StringComparison.Ordinal);
        Assert.Contains("memory quota", await AttrAsync(page, "#memory-chart", "data-legend"), StringComparison.Ordinal);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task TheSimulationPagesSayWhatTheGoalIsAndShowNoBackticks()
    {
        var list = await fx.OpenAsync("#/simulations");
        Assert.DoesNotContain("`", await list.InnerTextAsync("#page"), StringComparison.Ordinal);
        Assert.True(await list.Locator("#page code").CountAsync() >= 1);
        await list.CloseAsync();

        var page = await fx.OpenAsync($"#/simulations/{fx.SimulationId}");
        Assert.DoesNotContain("`", await page.InnerTextAsync("#page"), StringComparison.Ordinal);
        var goal = page.Locator("#goal tbody tr");
        Assert.Equal(3, await goal.CountAsync());
        Assert.Contains("at least 30%", await page.InnerTextAsync("#goal"), StringComparison.Ordinal);
        // The badge agrees with its parts.
        var met = (await page.InnerTextAsync("#simulation-summary")).Contains("goal met", StringComparison.Ordinal);
        var parts = await page.Locator("#goal tbody tr[data-met='false']").CountAsync();
        Assert.Equal(met, parts == 0);
        await page.CloseAsync();
    }

    [ChromiumFact]
    public async Task EveryPageFitsAt1400And800PixelsAndIsPhotographed()
    {
        var pages = new (string Name, string Hash)[]
        {
            ("fleet", "#/"), ("resource", "#/resources/checkout"), ("capacity", "#/capacity?group=shop"),
            ("training", "#/training"), ("simulations", "#/simulations"), ("simulation", $"#/simulations/{fx.SimulationId}"),
        };
        foreach (var width in new[] { 1400, 800 })
        {
            foreach (var (name, hash) in pages)
            {
                var page = await fx.OpenAsync(hash, width);
                // The page itself never scrolls sideways (a wide table scrolls in its own box).
                var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - document.documentElement.clientWidth");
                Assert.True(overflow <= 0, $"{name} at {width} px scrolls sideways by {overflow} px");
                if (width == 1400)
                {
                    // At 1,400 px no table needs its own scroll either (the training page's planning column did).
                    var scrolled = await page.EvaluateAsync<string[]>("() => [...document.querySelectorAll('.table-scroll')].filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.firstElementChild.id)");
                    Assert.True(scrolled.Length == 0, $"{name} at 1400 px: tables wider than the screen: {string.Join(", ", scrolled)}");
                }
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(DashboardFixture.Artifacts(), $"dashboard-{name}-{width}.png"), FullPage = true });
                await page.CloseAsync();
            }
        }
    }
}
