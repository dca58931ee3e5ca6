using System.Globalization;
using System.Text;
using System.Text.Json;
using Forecaster.Api.Sources;

namespace Forecaster.Api.Tests.Sources;

/// <summary>
/// The query_range answer parser: the hand scan of `values` that Prometheus writes, and the token-by-token reading of
/// whatever else a compatible server may send, must give the same points and gaps.
/// </summary>
public sealed class MatrixParsingTests
{
    static readonly DateTime T0 = DateTime.UnixEpoch.AddSeconds(1_733_000_000);

    /// <summary>As Prometheus 2.42 writes it (no whitespace), with `stats` and `warnings` members around the data.</summary>
    const string Compact = """
        {"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"load","job":"a\"b\\c","pod":"p\u00e9"},"values":[[1733000000,"12.5"],[1733000060.5,"NaN"],[1733000120.25,"7"],[1733000180,"+Inf"],[1733000240.125,"-Inf"],[1733000300,"1e-3"],[1733000360,"2345670000"]]}],"stats":{"timings":{"evalTotalTime":0.1},"samples":{"totalQueryableSamples":7}}},"warnings":["one","two"]}
        """;

    static readonly (DateTime, double)[] Expected =
    [
        (T0, 12.5),
        (T0.AddSeconds(120.25), 7),
        (T0.AddSeconds(300), 0.001),
        (T0.AddSeconds(360), 2_345_670_000),
    ];

    [Fact]
    public void PrometheusAnswerGivesEveryFinitePointAndCountsTheRestAsGaps()
    {
        var series = Assert.Single(PrometheusClient.ParseMatrix(Encoding.UTF8.GetBytes(Compact)));
        Assert.Equal(Expected, series.Points);
        Assert.Equal(3, series.Gaps);
        Assert.Equal("{__name__=\"load\",job=\"a\"b\\c\",pod=\"p\u00e9\"}", series.Describe());
    }

    [Fact]
    public void IndentedReorderedOrUnusualValuesGiveTheSamePoints()
    {
        // Pretty-printed, `data` before `status`, members of a series in the other order.
        var indented = """
            {
              "data": {
                "result": [
                  {
                    "values": [ [ 1733000000 , "12.5" ] , [1733000060.5, "NaN"],
                                [1733000120.25,"7"], [1733000180, "+Inf"], [1733000240.125, "-Inf"],
                                [1733000300, "1e-3"], [1733000360, "2345670000"] ],
                    "metric": { "__name__": "load" }
                  }
                ],
                "resultType": "matrix"
              },
              "status": "success"
            }
            """;
        var a = Assert.Single(PrometheusClient.ParseMatrix(Encoding.UTF8.GetBytes(indented)));
        Assert.Equal(Expected, a.Points);
        Assert.Equal(3, a.Gaps);

        // Timestamps in exponent form and a value written with an escape: read token by token, same points, the
        // escaped value a gap.
        var unusual = """
            {"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1.733e9,"12.5"],[1733000060.5,"NaN"],[1733000120.25,"7"],[1733000180,"+Inf"],[1733000240.125,"-Inf"],[1733000300,"1e-3"],[1733000360,"2345670000"],[1733000420,"1\u002e5"]]}]}}
            """;
        var b = Assert.Single(PrometheusClient.ParseMatrix(Encoding.UTF8.GetBytes(unusual)));
        Assert.Equal(Expected, b.Points);
        Assert.Equal(4, b.Gaps);
    }

    [Fact]
    public void SeveralSeriesAndEmptyResultsAreReadAsSent()
    {
        var two = """{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"pod":"a"},"values":[[1733000000,"1"]]},{"metric":{"pod":"b"},"values":[]}]}}""";
        var series = PrometheusClient.ParseMatrix(Encoding.UTF8.GetBytes(two));
        Assert.Equal(new[] { "{pod=\"a\"}", "{pod=\"b\"}" }, series.Select(s => s.Describe()));
        Assert.Equal(new[] { (T0, 1.0) }, series[0].Points);
        Assert.Empty(series[1].Points);

        Assert.Empty(PrometheusClient.ParseMatrix("""{"status":"success","data":{"resultType":"matrix","result":[]}}"""u8));
    }

    [Fact]
    public void ErrorsAndOtherResultTypesAreQueryErrors()
    {
        var error = Assert.Throws<PrometheusQueryException>(() =>
            PrometheusClient.ParseMatrix("""{"status":"error","errorType":"bad_data","error":"parse error"}"""u8));
        Assert.Equal("Prometheus answered status 'error'", error.Message);

        var vector = Assert.Throws<PrometheusQueryException>(() =>
            PrometheusClient.ParseMatrix("""{"status":"success","data":{"resultType":"vector","result":[]}}"""u8));
        Assert.Equal("expected a range vector (matrix), got vector", vector.Message);
    }

    [Fact]
    public void ValuesParseExactlyAsDoubleParseDoes()
    {
        // Go's shortest decimal form, as Prometheus writes values, and fixed decimals, over the ranges samples take.
        var random = new Random(11);
        var texts = new List<string> { "12.5", "0.001", "2345670000", "123456789012345", "1234567890123456", "0.1", "0.30000000000000004", "-3.25", "7", ".5", "12.", "1e-3", "1E+20" };
        for (var n = 0; n < 20_000; n++)
        {
            var v = Math.Pow(10, random.NextDouble() * 24 - 8) * random.NextDouble();
            texts.Add(v.ToString("R", CultureInfo.InvariantCulture));
            texts.Add(v.ToString("F" + (n % 10), CultureInfo.InvariantCulture));
        }
        foreach (var text in texts)
        {
            Assert.True(PrometheusClient.ParseValue(Encoding.UTF8.GetBytes(text), out var parsed), text);
            Assert.Equal(BitConverter.DoubleToInt64Bits(double.Parse(text, CultureInfo.InvariantCulture)), BitConverter.DoubleToInt64Bits(parsed));
        }
        foreach (var gap in new[] { "NaN", "+Inf", "-Inf" })
        {
            Assert.False(PrometheusClient.ParseValue(Encoding.UTF8.GetBytes(gap), out var parsed) && double.IsFinite(parsed), gap);
        }
        Assert.False(PrometheusClient.ParseValue("12.5x"u8, out _));
        Assert.False(PrometheusClient.ParseValue(""u8, out _));
    }

    [Theory]
    [InlineData("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1733000000,"1"],[1733000060,"2""")]
    [InlineData("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1733000000,"1"]]}]}""")]
    [InlineData("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["1733000000","1"]]}]}}""")]
    [InlineData("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1733000000,"1"]]}]}} trailing""")]
    [InlineData("""<html>502 Bad Gateway</html>""")]
    [InlineData("")]
    public void MalformedAnswersAreJsonErrors(string body)
    {
        Assert.ThrowsAny<JsonException>(() => PrometheusClient.ParseMatrix(Encoding.UTF8.GetBytes(body)));
    }
}
