using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests.Security;

/// <summary>Text, problem shape and timestamps: every input passes one check and every 4xx has one shape.</summary>
public sealed class HostileInputTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    static Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string field, string message) =>
        SamplesApiTests.AssertProblem(response, status, field, message);

    [Theory]
    [InlineData("/api/v1/resources?group=%00", "group", "NUL")]
    [InlineData("/api/v1/resources?after=a%00b", "after", "NUL")]
    [InlineData("/api/v1/resources?group=%FF", "group", "not valid UTF-8")]
    [InlineData("/api/v1/resources?group=%ED%A0%80", "group", "not valid UTF-8")]
    [InlineData("/api/v1/resources?kind=%1B", "kind", "control character U+001B")]
    [InlineData("/api/v1/resources/text-svc/samples?metric=%00", "metric", "NUL")]
    [InlineData("/api/v1/models/active?group=fuzz%00", "group", "NUL")]
    [InlineData("/api/v1/groups/a%FFb/quota", "group", "not valid UTF-8")]
    [InlineData("/api/v1/resources/web%0A", "name", "control character U+000A")]
    public async Task ControlCharactersAndInvalidUtf8InTheUrlAre400NamingTheField(string url, string field, string message)
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "text-svc");
        await AssertProblem(await client.GetAsync(url), HttpStatusCode.BadRequest, field, message);
    }

    [Theory]
    [InlineData("""{"kind":"service","group":"a\u0000b","loadMetric":"qps"}""", "group", "NUL")]
    [InlineData("""{"kind":"service","group":"\ud800","loadMetric":"qps"}""", "group", "lone surrogate")]
    [InlineData("""{"kind":"service","group":" padded","loadMetric":"qps"}""", "group", "starts or ends with whitespace")]
    [InlineData("""{"kind":"service","group":"shop\u202e","loadMetric":"qps"}""", "group", "invisible format character")]
    [InlineData("""{"kind":"service\u0007","loadMetric":"qps"}""", "kind", "control character U+0007")]
    [InlineData("""{"kind":"service","loadMetric":"qps","policy":{"\ud800":1}}""", "policy", "lone surrogate")]
    [InlineData("""{"kind":"service","loadMetric":"qps","policy":{"maxReplicas":4,"windows":[{"timeZone":"a\u0000"}]}}""", "policy.windows[0].timeZone", "NUL")]
    public async Task BadTextInAJsonBodyIsA400NamingItsPathAndStoresNothing(string body, string field, string message)
    {
        var client = api.Writer();
        var before = await api.ScalarAsync<long>("SELECT count(*) FROM resources");
        await AssertProblem(await client.PutAsync("/api/v1/resources/text-json", ApiFixture.Json(body)), HttpStatusCode.BadRequest, field, message);
        Assert.Equal(before, await api.ScalarAsync<long>("SELECT count(*) FROM resources"));
    }

    [Fact]
    public async Task ANulInACsvCellOrAnInlineSeriesNameIsA400()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "text-csv");
        var csv = new ByteArrayContent([.. Encoding.UTF8.GetBytes("resource,metric,timestamp,value\ntext-csv,q\0ps,2026-11-20T10:00:00Z,1\n")]);
        csv.Headers.ContentType = new("text/csv");
        var response = await client.PostAsync("/api/v1/samples", csv);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(0, await api.CountSamplesAsync("text-csv"));

        var simulation = await client.PostAsync("/api/v1/simulations", ApiFixture.Json("""
            {"series":[{"name":"a\u0000","points":[{"timestamp":"2026-11-20T10:00:00Z","value":1}]}],"policy":{"maxReplicas":4}}
            """));
        await AssertProblem(simulation, HttpStatusCode.BadRequest, "series[0].name", "NUL");
    }

    [Fact]
    public async Task BindingFailuresSayWhatWasWrongWithoutDotNetNames()
    {
        var client = api.Writer();
        var wrongType = await AssertProblem(await client.PutAsync("/api/v1/groups/shape/quota", ApiFixture.Json("[]")), HttpStatusCode.BadRequest, "body", "wrong JSON type");
        Assert.DoesNotContain("Forecaster.", wrongType.GetRawText(), StringComparison.Ordinal);

        var nullBody = await client.PutAsync("/api/v1/groups/shape/quota", ApiFixture.Json("null"));
        var text = await nullBody.Content.ReadAsStringAsync();
        await AssertProblem(nullBody, HttpStatusCode.BadRequest, "body", "is required");
        Assert.DoesNotContain("Implicit body", text, StringComparison.Ordinal);

        var missing = new HttpRequestMessage(HttpMethod.Put, "/api/v1/resources/shape-svc");
        missing.Headers.Add("X-Api-Key", ApiFixture.ApiKey);
        var noBody = await api.Reader().SendAsync(missing);
        Assert.DoesNotContain("Implicit body", await noBody.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("application/problem+json", noBody.Content.Headers.ContentType?.MediaType);

        await AssertProblem(await client.GetAsync("/api/v1/resources?limit=many"), HttpStatusCode.BadRequest, "limit", "'many' is not a valid value");
    }

    [Fact]
    public async Task EveryFourHundredHasErrorsKeyedByFieldEvenForClientsThatAcceptOnlyXml()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/resources/nobody-here");
        request.Headers.Add("Accept", "application/xml");
        var notFound = await AssertProblem(await api.Reader().SendAsync(request), HttpStatusCode.NotFound, "name", "No resource is named");
        Assert.Equal(404, notFound.GetProperty("status").GetInt32());

        var unauthorized = await AssertProblem(await api.Reader().PutAsync("/api/v1/resources/x", ApiFixture.Json("{}")), HttpStatusCode.Unauthorized, "X-Api-Key", "API key");
        Assert.Equal(401, unauthorized.GetProperty("status").GetInt32());

        var wrongCharset = new StringContent("{}", Encoding.Unicode, "application/json");
        await AssertProblem(await api.Writer().PutAsync("/api/v1/resources/x", wrongCharset), HttpStatusCode.UnsupportedMediaType, "Content-Type", "UTF-8");
    }

    [Fact]
    public async Task TimestampsNeedAnOffsetOnEveryEndpointAndAreConvertedToUtc()
    {
        var client = api.Writer();
        await AssertProblem(await client.GetAsync("/api/v1/capacity?from=2026-11-21T12:00:00"), HttpStatusCode.BadRequest, "from", "has no UTC offset");
        await AssertProblem(await client.GetAsync("/api/v1/capacity?from=2026-11-21T12:00:00Z&to=2026-11-22T00:00:00"), HttpStatusCode.BadRequest, "to", "has no UTC offset");
        await AssertProblem(await client.GetAsync("/api/v1/plans/current?at=2026-11-21T12:00:00"), HttpStatusCode.BadRequest, "at", "has no UTC offset");

        var capacity = await client.GetFromJsonAsync<JsonElement>("/api/v1/capacity?from=2026-11-21T14:00:00%2B02:00&to=2026-11-21T16:00:00%2B02:00");
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero), capacity.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(TimeSpan.Zero, capacity.GetProperty("from").GetDateTimeOffset().Offset);

        await api.PutServiceAsync(client, "offset-svc");
        var posted = await client.PostAsync("/api/v1/resources/offset-svc/samples",
            ApiFixture.Json("""{"samples":[{"metric":"qps","timestamp":"2026-11-20T10:00:00+02:00","value":5}]}"""));
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        var series = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/offset-svc/samples?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z");
        Assert.Equal(new DateTimeOffset(2026, 11, 20, 8, 0, 0, TimeSpan.Zero), series.GetProperty("points")[0].GetProperty("timestamp").GetDateTimeOffset());
    }

    [Fact]
    public async Task MoreThanOneApiKeyIs401EvenWhenTheFirstIsValid()
    {
        foreach (var second in new[] { "not-a-key", ApiFixture.ApiKey })
        {
            var request = new HttpRequestMessage(HttpMethod.Put, "/api/v1/groups/twice/quota") { Content = ApiFixture.Json("""{"cpuCores":1}""") };
            request.Headers.TryAddWithoutValidation("X-Api-Key", [ApiFixture.ApiKey, second]);
            await AssertProblem(await api.Reader().SendAsync(request), HttpStatusCode.Unauthorized, "X-Api-Key", "exactly one");
        }
        Assert.Equal(0, await api.ScalarAsync<long>("""SELECT count(*) FROM group_quotas WHERE "group" = 'twice'"""));
    }

    [Theory]
    [InlineData("/api/v1/resources")]
    [InlineData("/api/v1/resources/nobody")]
    [InlineData("/")]
    [InlineData("/swagger/index.html")]
    [InlineData("/swagger/v1/swagger.json")]
    public async Task EveryAnswerCarriesTheSecurityHeaders(string url)
    {
        var response = await api.Reader().GetAsync(url);
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
        Assert.Contains("frame-ancestors 'none'", Assert.Single(response.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task APolicyWithMoreThanAHundredWindowsIsRefused()
    {
        var windows = string.Join(',', Enumerable.Range(0, 101).Select(_ => """{"days":["mon"],"from":"08:00","to":"18:00","timeZone":"UTC","minReplicas":2}"""));
        var response = await api.Writer().PutAsync("/api/v1/resources/many-windows",
            ApiFixture.Json($$$"""{"kind":"service","loadMetric":"qps","policy":{"maxReplicas":10,"windows":[{{{windows}}}]}}"""));
        await AssertProblem(response, HttpStatusCode.BadRequest, "policy.windows", "at most 100");
    }
}

/// <summary>Bounds and partitions that need settings of their own.</summary>
public sealed class RequestBoundsTests(RequestBoundsTests.Bounded api) : IClassFixture<RequestBoundsTests.Bounded>
{
    public sealed class Bounded : ApiFixture
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
        [
            new("Forecaster:MaxJsonBodyBytes", "2048"),
            new("Forecaster:RateLimit:Burst", "5"),
            new("Forecaster:RateLimit:PermitsPerPeriod", "1"),
            new("Forecaster:RateLimit:PeriodSeconds", "3600"),
            new("AllowedHosts", "forecaster.example;localhost"),
        ];
    }

    [Fact]
    public async Task EveryJsonBodyIsBoundedByTheConfiguredLimitNotTheServers()
    {
        var big = $$$"""{"kind":"service","group":"{{{new string('g', 100)}}}","loadMetric":"qps","policy":{"maxReplicas":4,"windows":[{{{string.Join(',', Enumerable.Repeat("{}", 1000))}}}]}}""";
        var response = await api.Writer().PutAsync("/api/v1/resources/big-body", ApiFixture.Json(big));
        await SamplesApiTests.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge, "body", "2048");
    }

    [Fact]
    public async Task FloodsOfWritesAndInvalidKeysDoNotStarvePlanReads()
    {
        // An invalid-key flood and a write flood from the same (test) address spend their own buckets...
        var bad = api.Factory.CreateClient();
        bad.DefaultRequestHeaders.Add("X-Api-Key", "guessing");
        var writer = api.Writer();
        for (var i = 0; i < 8; i++)
        {
            await bad.GetAsync("/api/v1/resources");
            await writer.GetAsync("/api/v1/resources");
        }
        Assert.Equal(HttpStatusCode.TooManyRequests, (await bad.GetAsync("/api/v1/resources")).StatusCode);
        var throttled = await writer.GetAsync("/api/v1/resources");
        await SamplesApiTests.AssertProblem(throttled, HttpStatusCode.TooManyRequests, "request", "request budget");
        // ...while an executor behind the same address still reads its plans, and an anonymous reader still lists.
        Assert.Equal(HttpStatusCode.OK, (await api.Reader().GetAsync("/api/v1/plans/current")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await api.Reader().GetAsync("/api/v1/resources")).StatusCode);
    }

    [Fact]
    public async Task AllowedHostsIsHonoured()
    {
        var stranger = new HttpRequestMessage(HttpMethod.Get, "/api/v1/resources");
        stranger.Headers.Host = "attacker.example";
        Assert.Equal(HttpStatusCode.BadRequest, (await api.Reader().SendAsync(stranger)).StatusCode);
        var named = new HttpRequestMessage(HttpMethod.Get, "/health/live");
        named.Headers.Host = "forecaster.example";
        Assert.NotEqual(HttpStatusCode.BadRequest, (await api.Reader().SendAsync(named)).StatusCode);
    }
}
