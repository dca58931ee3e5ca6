using System.Net;
using Dapper;
using Forecaster.Api.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Forecaster.Api.Tests.Jobs;

/// <summary>
/// The service in memory, where each request says which address it comes from (the test server has none of its own): a
/// start-up filter sets the connection's remote address from the X-Test-Remote header, before anything else runs.
/// </summary>
public sealed class RemoteAddressFixture : IAsyncLifetime
{
    public WebApplicationFactory<Program> Factory { get; private set; } = null!;
    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        ConnectionString = await TestCluster.CreateDatabaseAsync("jobsdash");
        Factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("FORECASTER_DB", ConnectionString);
            web.UseSetting("Forecaster:ApiKeys:0", ApiFixture.ApiKey);
            web.ConfigureTestServices(s => s.AddSingleton<IStartupFilter, RemoteAddressFromHeader>());
        });
        _ = Factory.Server;
    }

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>A client whose requests come from <paramref name="remote"/>, never following redirects.</summary>
    public HttpClient From(string remote, string? key = null)
    {
        var client = Factory.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false });
        client.DefaultRequestHeaders.Add("X-Test-Remote", remote);
        if (key is not null)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", key);
        }
        return client;
    }

    sealed class RemoteAddressFromHeader : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((HttpContext http, RequestDelegate inner) =>
            {
                http.Connection.RemoteIpAddress = IPAddress.Parse(http.Request.Headers["X-Test-Remote"].ToString());
                return inner(http);
            });
            next(app);
        };
    }
}

/// <summary>Hangfire's dashboard at /jobs: anonymous reading from loopback only; elsewhere the API key; writing needs a key.</summary>
public sealed class JobsDashboardTests(RemoteAddressFixture fx) : IClassFixture<RemoteAddressFixture>
{
    const string Remote = "203.0.113.7";

    [Fact]
    public async Task LoopbackReadsAnonymouslyAndSeesTheNightlyRecurringJob()
    {
        var response = await fx.From("127.0.0.1").GetAsync("/jobs/recurring");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("nightly-training", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await fx.From("::1").GetAsync("/jobs")).StatusCode);
    }

    [Fact]
    public async Task ElsewhereWithoutAKeyIs401WithASignInForm()
    {
        var response = await fx.From(Remote).GetAsync("/jobs");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("name=\"key\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await fx.From(Remote).GetAsync("/jobs/recurring")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await fx.From(Remote, "not-a-key").GetAsync("/jobs")).StatusCode);
        // A wrong key is refused on loopback too: credentials presented are judged, not ignored.
        Assert.Equal(HttpStatusCode.Unauthorized, (await fx.From("127.0.0.1", "not-a-key").GetAsync("/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fx.From(Remote, ApiFixture.ApiKey).GetAsync("/jobs/recurring")).StatusCode);
    }

    [Fact]
    public async Task SigningInSetsAnHttpOnlyStrictCookieThatOpensTheDashboard()
    {
        var refused = await fx.From(Remote).PostAsync("/jobs/sign-in", new FormUrlEncodedContent([new("key", "wrong")]));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.False(refused.Headers.Contains("Set-Cookie"));

        var signedIn = await fx.From(Remote).PostAsync("/jobs/sign-in", new FormUrlEncodedContent([new("key", ApiFixture.ApiKey)]));
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal("/jobs", signedIn.Headers.Location?.OriginalString);
        var cookie = Assert.Single(signedIn.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/jobs", cookie, StringComparison.OrdinalIgnoreCase);

        var client = fx.From(Remote);
        client.DefaultRequestHeaders.Add("Cookie", cookie.Split(';')[0]);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/jobs/recurring")).StatusCode);
    }

    [Fact]
    public async Task TriggeringAJobNeedsAKeyEvenOnLoopback()
    {
        var trigger = () => new FormUrlEncodedContent([new("jobs[]", "nightly-training")]);
        var anonymous = await fx.From("127.0.0.1").PostAsync("/jobs/recurring/trigger", trigger());
        Assert.False(anonymous.IsSuccessStatusCode, $"anonymous trigger answered {anonymous.StatusCode}");
        await using var conn = new NpgsqlConnection(fx.ConnectionString);
        Assert.Equal(0, await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs"));

        var keyed = await fx.From("127.0.0.1", ApiFixture.ApiKey).PostAsync("/jobs/recurring/trigger", trigger());
        Assert.True(keyed.IsSuccessStatusCode, $"keyed trigger answered {keyed.StatusCode}");
        // The nightly job really ran: it created a nightly run.
        var deadline = TimeProvider.System.GetUtcNow().AddMinutes(1);
        while (await conn.ExecuteScalarAsync<int>("SELECT count(*)::int FROM training_runs WHERE trigger = 'nightly'") == 0)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "the triggered nightly job created no run");
            await Task.Delay(200);
        }
    }
}
