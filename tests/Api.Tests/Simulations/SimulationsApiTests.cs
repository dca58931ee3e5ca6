using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests.Simulations;

/// <summary>POST /api/v1/simulations runs in the background (202 + id); GET follows it to the stored report.</summary>
public sealed class SimulationsApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    static readonly DateTimeOffset Start = new(2026, 10, 20, 0, 0, 0, TimeSpan.Zero);

    static string Points(double[] load) => string.Join(",", load.Select((v, t) =>
        string.Create(CultureInfo.InvariantCulture, $$"""{"timestamp":"{{Start.AddHours(t):yyyy-MM-ddTHH:mm:ssZ}}","value":{{v:F3}}}""")));

    async Task<JsonElement> WaitAsync(HttpClient client, string location)
    {
        for (var i = 0; i < 600; i++)
        {
            var view = await client.GetFromJsonAsync<JsonElement>(location);
            if (view.GetProperty("status").GetString() is "succeeded" or "failed")
            {
                return view;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{location} did not finish");
    }

    [Fact]
    public async Task InlineSeriesAreReplayedInTheBackgroundAndTheReportIsStored()
    {
        var client = api.Writer();
        var response = await client.PostAsync("/api/v1/simulations", ApiFixture.Json($$"""
            {"series":[{"name":"web","points":[{{Points(ReplayTests.Tidal(30))}}]}],"policy":{"minReplicas":1,"capacityPerReplica":50},"trainDays":28}
            """));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal($"/api/v1/simulations/{accepted.GetProperty("id").GetInt64()}", response.Headers.Location!.ToString());

        var done = await WaitAsync(api.Reader(), response.Headers.Location!.ToString());
        Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        Assert.Equal(100, done.GetProperty("progress").GetProperty("percent").GetDouble());
        var report = done.GetProperty("report");
        Assert.Equal(["predictive", "predictive+reactive", "reactive", "static-peak", "yesterday", "oracle"], report.GetProperty("totals").EnumerateObject().Select(p => p.Name));
        Assert.Equal(48, report.GetProperty("totals").GetProperty("reactive").GetProperty("hours").GetInt32());
        Assert.Equal("policy", report.GetProperty("capacity").GetProperty("web").GetProperty("source").GetString());
        // The report is a row, so it outlives the process that computed it.
        Assert.True(await api.ScalarAsync<bool>("SELECT report::jsonb ? 'totals' FROM simulations WHERE id = @id", new { id = accepted.GetProperty("id").GetInt64() }));
    }

    [Fact]
    public async Task StoredResourcesAreReplayedFromTheirLoadMetric()
    {
        var client = api.Writer();
        var csv = new StringBuilder("resource,metric,timestamp,value\n");
        var load = ReplayTests.Tidal(30);
        for (var t = 0; t < load.Length; t++)
        {
            csv.Append(CultureInfo.InvariantCulture, $"sim-svc,qps,{Start.AddHours(t):yyyy-MM-ddTHH:mm:ssZ},{load[t]:F3}\n");
            csv.Append(CultureInfo.InvariantCulture, $"sim-svc,cpu_cores,{Start.AddHours(t):yyyy-MM-ddTHH:mm:ssZ},{load[t] / 100:F3}\n");
        }
        (await client.PostAsync("/api/v1/samples?createResources=true", ApiFixture.Csv(csv.ToString()))).EnsureSuccessStatusCode();

        var response = await client.PostAsync("/api/v1/simulations", ApiFixture.Json("""{"resources":["sim-svc"],"policy":{"maxReplicas":40}}"""));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var done = await WaitAsync(api.Reader(), response.Headers.Location!.ToString());
        Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        var report = done.GetProperty("report");
        Assert.Equal(["sim-svc"], report.GetProperty("series").EnumerateObject().Select(p => p.Name));
        Assert.Equal("auto", report.GetProperty("capacity").GetProperty("sim-svc").GetProperty("source").GetString());
    }

    [Theory]
    [InlineData("""{"policy":{"maxReplicas":4}}""", "resources")]
    [InlineData("""{"resources":["a"],"series":[{"name":"x","points":[{"timestamp":"2026-10-20T00:00:00Z","value":1}]}],"policy":{"maxReplicas":4}}""", "resources")]
    [InlineData("""{"resources":["Not A Name"],"policy":{"maxReplicas":4}}""", "resources[0]")]
    [InlineData("""{"resources":["nobody"],"policy":{"maxReplicas":4}}""", "resources[0]")]
    [InlineData("""{"resources":["a"]}""", "policy")]
    [InlineData("""{"resources":["a"],"policy":{"maxReplicas":0}}""", "policy.maxReplicas")]
    [InlineData("""{"resources":["a"],"policy":{"minReplicas":1}}""", "policy.capacityPerReplica")]
    [InlineData("""{"resources":["a"],"policy":{"maxReplicas":4},"trainDays":0}""", "trainDays")]
    [InlineData("""{"series":[{"name":"x","points":[]}],"policy":{"maxReplicas":4}}""", "series[0].points")]
    [InlineData("""{"series":[{"name":"x","points":[{"timestamp":"2026-10-20T00:00:00Z","value":-1}]}],"policy":{"maxReplicas":4}}""", "series")]
    [InlineData("""{"series":[{"name":"x","points":[null]}],"policy":{"maxReplicas":4}}""", "series[0].points[0]")]
    [InlineData("""{"series":[{"name":"x","points":[{"value":1}]}],"policy":{"maxReplicas":4}}""", "series[0].points[0]")]
    [InlineData("""{"series":[{"name":"x","points":[{"timestamp":"2020-01-01T00:00:00Z","value":1},{"timestamp":"2026-01-01T00:00:00Z","value":1}]}],"policy":{"maxReplicas":4}}""", "series[0].points")]
    public async Task BadRequestsAre400NamingTheField(string body, string field)
    {
        var response = await api.Writer().PostAsync("/api/v1/simulations", ApiFixture.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(field, problem.GetProperty("errors").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task AnUnknownSimulationIs404AndPostingNeedsAKey()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await api.Reader().GetAsync("/api/v1/simulations/999999")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.Reader().PostAsync("/api/v1/simulations", ApiFixture.Json("""{"resources":["a"],"policy":{"maxReplicas":4}}"""))).StatusCode);
    }
}
