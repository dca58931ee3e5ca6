using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Forecaster.Api.Tests.Infrastructure;

namespace Forecaster.Api.Tests;

public sealed class SamplesApiTests(ApiFixture api) : IClassFixture<ApiFixture>
{
    static string Sample(string metric, string ts, string value) => $$"""{"metric":"{{metric}}","timestamp":"{{ts}}","value":{{value}}}""";

    static StringContent Samples(params string[] samples) => ApiFixture.Json($$"""{"samples":[{{string.Join(",", samples)}}]}""");

    [Fact]
    public async Task PostingTheSameSamplesTwiceKeepsOneRowPerTimestampWithTheLatestValue()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "idem");
        var first = await client.PostAsync("/api/v1/resources/idem/samples",
            Samples(Sample("qps", "2026-11-20T13:00:00Z", "10"), Sample("qps", "2026-11-20T12:00:00Z", "5"), Sample("cpu_cores", "2026-11-20T13:00:00Z", "1.5")));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var retry = await client.PostAsync("/api/v1/resources/idem/samples",
            Samples(Sample("qps", "2026-11-20T13:00:00Z", "12.5"), Sample("qps", "2026-11-20T12:00:00Z", "5")));
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);

        Assert.Equal(3, await api.CountSamplesAsync("idem"));
        var series = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/idem/samples?metric=qps&from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z");
        var points = series.GetProperty("points").EnumerateArray().Select(p => (p.GetProperty("timestamp").GetDateTimeOffset(), p.GetProperty("value").GetDouble())).ToList();
        Assert.Equal([(new DateTimeOffset(2026, 11, 20, 12, 0, 0, TimeSpan.Zero), 5.0), (new DateTimeOffset(2026, 11, 20, 13, 0, 0, TimeSpan.Zero), 12.5)], points);
    }

    [Fact]
    public async Task ARequestRepeatingATimestampKeepsItsLastValue()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "dup");
        var response = await client.PostAsync("/api/v1/resources/dup/samples",
            Samples(Sample("qps", "2026-11-20T13:00:00Z", "1"), Sample("qps", "2026-11-20T13:00:00Z", "2")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2.0, await api.ScalarAsync<double>("SELECT value FROM sample_points sa JOIN series s ON s.id = sa.series_id JOIN resources r ON r.id = s.resource_id WHERE r.name = 'dup'"));
    }

    [Theory]
    [InlineData("\"NaN\"", "value", "not a finite number")]
    [InlineData("\"Infinity\"", "value", "not a finite number")]
    [InlineData("-1", "value", "negative")]
    [InlineData("null", "value", "required")]
    public async Task PostingABadValueStoresNothingAndNamesTheRow(string value, string field, string message)
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "badvalue");
        var before = await api.CountSamplesAsync("badvalue");
        var response = await client.PostAsync("/api/v1/resources/badvalue/samples",
            Samples(Sample("qps", "2026-11-20T10:00:00Z", "3"), Sample("qps", "2026-11-20T11:00:00Z", value)));
        await AssertProblem(response, HttpStatusCode.BadRequest, $"samples[1].{field}", message);
        Assert.Equal(before, await api.CountSamplesAsync("badvalue"));
    }

    [Theory]
    [InlineData("2026-11-20 25:00", "not an ISO 8601 timestamp")]
    [InlineData("yesterday", "not an ISO 8601 timestamp")]
    [InlineData("2026-11-20T10:00:00+25:00", "not an ISO 8601 timestamp")]
    [InlineData("2026-11-20T10:00:00", "has no UTC offset")]
    [InlineData("2026-11-23T12:00:00Z", "more than 1 day in the future")]
    public async Task PostingABadTimestampStoresNothingAndNamesTheRow(string timestamp, string message)
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "badtime");
        var response = await client.PostAsync("/api/v1/resources/badtime/samples",
            Samples(Sample("qps", "2026-11-20T10:00:00Z", "3"), Sample("qps", timestamp, "4")));
        await AssertProblem(response, HttpStatusCode.BadRequest, "samples[1].timestamp", message);
        Assert.Equal(0, await api.CountSamplesAsync("badtime"));
    }

    [Fact]
    public async Task PostingAnEmptyMetricStoresNothing()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "badmetric");
        var response = await client.PostAsync("/api/v1/resources/badmetric/samples", Samples(Sample("qps", "2026-11-20T10:00:00Z", "3"), Sample("", "2026-11-20T10:00:00Z", "3")));
        await AssertProblem(response, HttpStatusCode.BadRequest, "samples[1].metric", "empty");
        Assert.Equal(0, await api.CountSamplesAsync("badmetric"));
    }

    [Fact]
    public async Task PostingToAnUnknownResourceIs404WithAProblem()
    {
        var response = await api.Writer().PostAsync("/api/v1/resources/nobody/samples", Samples(Sample("qps", "2026-11-20T10:00:00Z", "3")));
        await AssertProblem(response, HttpStatusCode.NotFound, null, "No resource is named 'nobody'");
    }

    [Fact]
    public async Task MalformedJsonIsA400ProblemNotA500()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "malformed");
        var response = await client.PostAsync("/api/v1/resources/malformed/samples", ApiFixture.Json("""{"samples":[{"metric":"qps","timestamp":"2026-11-20T10:00:00Z","value":"x"}]}"""));
        await AssertProblem(response, HttpStatusCode.BadRequest, null, "$.samples[0].value");
    }

    [Fact]
    public async Task WritesWithoutAValidApiKeyAre401AndStoreNothing()
    {
        await api.PutServiceAsync(api.Writer(), "guarded");
        var anonymous = await api.Reader().PostAsync("/api/v1/resources/guarded/samples", Samples(Sample("qps", "2026-11-20T10:00:00Z", "3")));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
        // The detail says which of the two it is: the header is missing, or the key is not known.
        Assert.Contains("header is missing", (await anonymous.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        var wrong = api.Reader();
        wrong.DefaultRequestHeaders.Add("X-Api-Key", "not-a-key");
        var unknown = await wrong.PutAsync("/api/v1/resources/other", ApiFixture.Json("""{"kind":"service","loadMetric":"qps"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Contains("not known", (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await api.CountSamplesAsync("guarded"));
    }

    [Fact]
    public async Task BulkCsvStoresEveryRowAndAggregatesPerHour()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "bulk-a");
        await api.PutServiceAsync(client, "bulk-b", "records_in_rate");
        var csv = new StringBuilder("resource,metric,timestamp,value\n");
        var start = new DateTime(2026, 11, 19, 0, 0, 0, DateTimeKind.Utc);
        // Minute data for a day, out of order, with a quoted field.
        for (var m = 1439; m >= 0; m--)
        {
            csv.Append(FormattableString.Invariant($"bulk-a,qps,{start.AddMinutes(m):yyyy-MM-ddTHH:mm:ssZ},{m % 60}\n"));
            csv.Append(FormattableString.Invariant($"\"bulk-b\",records_in_rate,{start.AddMinutes(m):yyyy-MM-ddTHH:mm:ss.fffZ},{m}\n"));
        }
        var response = await client.PostAsync("/api/v1/samples", ApiFixture.Csv(csv.ToString()));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var result = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(2880, result.GetProperty("rows").GetInt64());
        Assert.Equal(1440, await api.CountSamplesAsync("bulk-a"));

        var hourly = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/bulk-a/samples?from=2026-11-19T00:00:00Z&to=2026-11-20T00:00:00Z&step=1h");
        var buckets = hourly.GetProperty("buckets").EnumerateArray().ToList();
        Assert.Equal(24, buckets.Count);
        Assert.All(buckets, b =>
        {
            Assert.Equal(29.5, b.GetProperty("mean").GetDouble(), 9);
            Assert.Equal(59, b.GetProperty("max").GetDouble());
            Assert.Equal(60, b.GetProperty("count").GetInt64());
        });
    }

    [Fact]
    public async Task BulkCsvAcceptsABomCrlfPaddedNamesAndNoFinalNewline()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "pad");
        var csv = "\uFEFFresource,metric,timestamp,value\r\npad,qps,2026-11-20T10:00:00Z,1\r\n pad , qps ,2026-11-20T11:00:00Z, 2 \r\npad,qps,2026-11-20T12:00:00.5Z,3";
        var response = await client.PostAsync("/api/v1/samples", ApiFixture.Csv(csv));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var series = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/pad/samples?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z");
        Assert.Equal([1.0, 2.0, 3.0], series.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("value").GetDouble()));
        Assert.Equal(new DateTimeOffset(2026, 11, 20, 12, 0, 0, 500, TimeSpan.Zero), series.GetProperty("points")[2].GetProperty("timestamp").GetDateTimeOffset());
    }

    [Fact]
    public async Task BulkCsvRetriesOverwriteAndNewSeriesAndOldMonthsAreHandledInOneRequest()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "retry-a");
        await api.PutServiceAsync(client, "retry-b");
        const string header = "resource,metric,timestamp,value\n";
        // New series: every row takes the path that registers series first.
        var first = header + "retry-a,qps,2026-11-20T10:00:00Z,1\nretry-a,qps,2026-11-20T11:00:00Z,2\n";
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/v1/samples", ApiFixture.Csv(first))).StatusCode);
        // Existing rows with new values (an upsert), a new series and a month long before today, all at once.
        var second = header + "retry-a,qps,2026-11-20T10:00:00Z,10\nretry-a,qps,2026-11-20T12:00:00Z,3\nretry-b,qps,2026-11-20T10:00:00Z,7\nretry-b,qps,2025-12-10T00:00:00Z,9\n";
        var response = await client.PostAsync("/api/v1/samples", ApiFixture.Csv(second));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var a = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/retry-a/samples?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z");
        Assert.Equal([10.0, 2.0, 3.0], a.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("value").GetDouble()));
        var b = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/retry-b/samples?from=2025-12-01T00:00:00Z&to=2026-11-21T00:00:00Z");
        Assert.Equal([9.0, 7.0], b.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("value").GetDouble()));
        Assert.Equal(1, await api.ScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relname = 'samples_202512'"));

        // Appending to existing series: rows stream straight in; a retry of the whole body changes nothing.
        var third = header + "retry-a,qps,2026-11-20T13:00:00Z,4\nretry-b,qps,2026-11-20T11:00:00Z,8\n";
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/v1/samples", ApiFixture.Csv(third))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/v1/samples", ApiFixture.Csv(third))).StatusCode);
        Assert.Equal(4, await api.CountSamplesAsync("retry-a"));
        Assert.Equal(3, await api.CountSamplesAsync("retry-b"));
    }

    [Theory]
    [InlineData("bulkbad,qps,2026-11-20T10:00:00Z,NaN", "value", "not a finite number")]
    [InlineData("bulkbad,qps,2026-11-20T10:00:00Z,-5", "value", "negative")]
    [InlineData("bulkbad,qps,2026-11-20T10:00:00Z,abc", "value", "not a number")]
    [InlineData("bulkbad,qps,20/11/2026 10:00,5", "timestamp", "not an ISO 8601 timestamp")]
    [InlineData("bulkbad,qps,2026-11-20T10:00:00,5", "timestamp", "has no UTC offset")]
    [InlineData("bulkbad,qps,2026-12-01T00:00:00Z,5", "timestamp", "future")]
    [InlineData("bulkbad,qps,2024-01-01T00:00:00Z,5", "timestamp", "more than 400 days in the past")]
    [InlineData("bulkbad,,2026-11-20T10:00:00Z,5", "metric", "empty")]
    [InlineData("bulkbad,qps,2026-11-20T10:00:00Z", "line", "expected 4 fields")]
    [InlineData("stranger,qps,2026-11-20T10:00:00Z,5", "resource", "unknown resource 'stranger'")]
    public async Task ABadCsvRowRejectsTheWholeBodyAndNamesItsLine(string badRow, string field, string message)
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "bulkbad");
        var before = await api.CountSamplesAsync();
        var csv = "resource,metric,timestamp,value\nbulkbad,qps,2026-11-20T08:00:00Z,1\nbulkbad,qps,2026-11-20T09:00:00Z,2\n" + badRow + "\nbulkbad,qps,2026-11-20T11:00:00Z,4\n";
        var response = await client.PostAsync("/api/v1/samples", ApiFixture.Csv(csv));
        var problem = await AssertProblem(response, HttpStatusCode.BadRequest, $"line 4: {field}", message);
        Assert.Equal(4, problem.GetProperty("row").GetInt64());
        Assert.Equal(before, await api.CountSamplesAsync());
    }

    [Fact]
    public async Task CsvWithCreateResourcesRegistersUnknownResourcesAsServices()
    {
        var client = api.Writer();
        var response = await client.PostAsync("/api/v1/samples?createResources=true",
            ApiFixture.Csv("resource,metric,timestamp,value\nfresh-one,records_in_rate,2026-11-20T10:00:00Z,5\nfresh-one,cpu_cores,2026-11-20T10:00:00Z,1\n"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var resource = await client.GetFromJsonAsync<JsonElement>("/api/v1/resources/fresh-one");
        Assert.Equal("service", resource.GetProperty("kind").GetString());
        Assert.Equal("records_in_rate", resource.GetProperty("loadMetric").GetString());
        Assert.Equal(["cpu_cores", "records_in_rate"], resource.GetProperty("metrics").EnumerateArray().Select(m => m.GetString()));
    }

    [Fact]
    public async Task CsvWithoutTheHeaderIsRejected()
    {
        var response = await api.Writer().PostAsync("/api/v1/samples", ApiFixture.Csv("a,b,c,d\n"));
        await AssertProblem(response, HttpStatusCode.BadRequest, "line 1: header", "header");
    }

    [Fact]
    public async Task CsvSentAsJsonIs415()
    {
        var response = await api.Writer().PostAsync("/api/v1/samples", ApiFixture.Json("{}"));
        await AssertProblem(response, HttpStatusCode.UnsupportedMediaType, null, "text/csv");
    }

    [Fact]
    public async Task QueryParametersAreValidated()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "query");
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?step=fortnightly"), HttpStatusCode.BadRequest, "step", "not a step");
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?from=2026-11-20T10:00:00"), HttpStatusCode.BadRequest, "from", "has no UTC offset");
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z"), HttpStatusCode.BadRequest, "from", "before");
        // Values at the edges of what a computer can count are refused, not overflowed into a 500.
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?step=300000000h"), HttpStatusCode.BadRequest, "step", "not a step");
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?step=P20000000D"), HttpStatusCode.BadRequest, "step", "not a step");
        await AssertProblem(await client.GetAsync("/api/v1/resources/query/samples?to=0001-01-01T00:00:00Z"), HttpStatusCode.BadRequest, "to", "outside the years");
        await AssertProblem(await client.GetAsync("/api/v1/capacity?from=9999-12-31T23:30:00Z"), HttpStatusCode.BadRequest, "from", "outside the years");
    }

    /// <summary>Asserts a problem document with the status, the field among its errors (when given) and the message in it.</summary>
    internal static async Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string? field, string message)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {status}, got {response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        if (field is not null)
        {
            Assert.True(problem.TryGetProperty("errors", out var errors) && errors.TryGetProperty(field, out _), $"no error for '{field}' in {body}");
        }
        Assert.Contains(message, body, StringComparison.Ordinal);
        return problem;
    }
}

/// <summary>Bodies over the configured limit are refused with 413 whether or not they declare their length.</summary>
public sealed class BodyLimitTests(BodyLimitTests.SmallLimits api) : IClassFixture<BodyLimitTests.SmallLimits>
{
    public sealed class SmallLimits : ApiFixture
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings =>
        [
            new("Forecaster:MaxJsonBodyBytes", "2048"),
            new("Forecaster:MaxCsvBodyBytes", "4096"),
        ];
    }

    [Fact]
    public async Task ACsvBodyOverTheLimitIs413AndStoresNothing()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "big");
        var csv = new StringBuilder("resource,metric,timestamp,value\n");
        for (var i = 0; i < 200; i++)
        {
            csv.Append(FormattableString.Invariant($"big,qps,{new DateTime(2026, 11, 1, 0, 0, 0, DateTimeKind.Utc).AddHours(i):yyyy-MM-ddTHH:mm:ssZ},{i}\n"));
        }
        var declared = await client.PostAsync("/api/v1/samples", ApiFixture.Csv(csv.ToString()));
        await SamplesApiTests.AssertProblem(declared, HttpStatusCode.RequestEntityTooLarge, null, "4096 bytes");

        // Chunked: no Content-Length, so the limit is enforced while streaming.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(csv.ToString())));
        chunked.Headers.ContentType = new("text/csv");
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/samples") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        await SamplesApiTests.AssertProblem(await client.SendAsync(request), HttpStatusCode.RequestEntityTooLarge, null, "4096 bytes");
        Assert.Equal(0, await api.CountSamplesAsync("big"));
    }

    [Fact]
    public async Task AJsonBodyOverTheLimitIs413()
    {
        var client = api.Writer();
        await api.PutServiceAsync(client, "bigjson");
        var samples = string.Join(",", Enumerable.Range(0, 100).Select(i => $$"""{"metric":"qps","timestamp":"2026-11-20T{{i % 24:00}}:00:00Z","value":{{i}}}"""));
        var response = await client.PostAsync("/api/v1/resources/bigjson/samples", ApiFixture.Json($$"""{"samples":[{{samples}}]}"""));
        await SamplesApiTests.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge, null, "2048 bytes");
        Assert.Equal(0, await api.CountSamplesAsync("bigjson"));
    }
}
