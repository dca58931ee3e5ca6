using System.Net;
using System.Text.Encodings.Web;
using Forecaster.Api.Security;
using Hangfire;
using Hangfire.Dashboard;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Jobs;

/// <summary>What a request may do on the /jobs dashboard.</summary>
public enum JobsAccess
{
    None,
    Read,
    Write,
}

/// <summary>
/// Hangfire's dashboard at /jobs (recurring jobs, runs, failures, retries). Anonymous requests from loopback may read it;
/// anything else needs an API key, which also allows triggering, retrying and deleting jobs. A browser cannot send
/// X-Api-Key, so /jobs/sign-in takes the key in a form and keeps it in an HttpOnly, SameSite=Strict cookie scoped to /jobs
/// (Strict: another site cannot make the browser send it, so its forms cannot trigger or delete jobs).
/// </summary>
public static class JobsDashboard
{
    public const string Path = "/jobs";
    public const string Cookie = "forecaster-jobs";
    const string SignIn = Path + "/sign-in";
    static readonly object AccessItem = new();

    public static WebApplication UseJobsDashboard(this WebApplication app)
    {
        app.UseWhen(http => http.Request.Path.StartsWithSegments(Path), branch => branch.Use(GateAsync));
        app.UseHangfireDashboard(Path, new DashboardOptions
        {
            AppPath = "/",
            DashboardTitle = "Forecaster jobs",
            DisplayStorageConnectionString = false,
            Authorization = [new GateFilter()],
            IsReadOnlyFunc = context => Access(context.GetHttpContext()) != JobsAccess.Write,
        });
        return app;
    }

    /// <summary>The access the gate granted this request.</summary>
    public static JobsAccess Access(HttpContext http) => http.Items.TryGetValue(AccessItem, out var a) && a is JobsAccess access ? access : JobsAccess.None;

    static async Task GateAsync(HttpContext http, RequestDelegate next)
    {
        var ring = http.RequestServices.GetRequiredService<ApiKeyRing>();
        if (http.Request.Path.Equals(SignIn, StringComparison.Ordinal))
        {
            await SignInAsync(http, ring);
            return;
        }
        var access = Resolve(http, ring);
        if (access == JobsAccess.None)
        {
            await SignInPageAsync(http, StatusCodes.Status401Unauthorized, null);
            return;
        }
        http.Items[AccessItem] = access;
        await next(http);
    }

    static JobsAccess Resolve(HttpContext http, ApiKeyRing ring)
    {
        var headers = http.Request.Headers[ApiKeyHandler.Header];
        var key = headers.Count > 0 ? headers[0] : http.Request.Cookies[Cookie];
        if (!string.IsNullOrEmpty(key))
        {
            // Every API key may write (writes need one); more than one header is refused rather than judged by its first.
            return headers.Count <= 1 && ring.Identify(key) is not null ? JobsAccess.Write : JobsAccess.None;
        }
        var jobs = http.RequestServices.GetRequiredService<IOptions<JobsOptions>>().Value;
        var forecaster = http.RequestServices.GetRequiredService<IOptions<ForecasterOptions>>().Value;
        var remote = http.Connection.RemoteIpAddress;
        var loopback = remote is not null && IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote);
        return loopback && jobs.DashboardAnonymousLoopback && !forecaster.RequireApiKeyForReads ? JobsAccess.Read : JobsAccess.None;
    }

    static async Task SignInAsync(HttpContext http, ApiKeyRing ring)
    {
        if (!HttpMethods.IsPost(http.Request.Method))
        {
            await SignInPageAsync(http, StatusCodes.Status200OK, null);
            return;
        }
        var key = http.Request.HasFormContentType ? (await http.Request.ReadFormAsync(http.RequestAborted))["key"].ToString() : "";
        if (key.Length == 0 || ring.Identify(key) is null)
        {
            await SignInPageAsync(http, StatusCodes.Status401Unauthorized, "That key is not accepted.");
            return;
        }
        http.Response.Cookies.Append(Cookie, key, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = http.Request.IsHttps,
            Path = Path,
            MaxAge = TimeSpan.FromHours(12),
        });
        http.Response.Redirect(Path, permanent: false);
    }

    static Task SignInPageAsync(HttpContext http, int status, string? message)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/html; charset=utf-8";
        var note = message is null ? "" : $"<p role=\"alert\">{HtmlEncoder.Default.Encode(message)}</p>";
        return http.Response.WriteAsync($$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Forecaster jobs: sign in</title></head>
            <body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto">
            <h1>Forecaster jobs</h1>
            <p>The jobs dashboard needs an API key here (anonymous reading is for loopback only).</p>
            {{note}}
            <form method="post" action="{{SignIn}}">
              <label>API key <input type="password" name="key" autocomplete="current-password" required></label>
              <button type="submit">Sign in</button>
            </form>
            </body></html>
            """);
    }

    /// <summary>The gate in front already decided; this keeps Hangfire from falling back to its own local-only rule.</summary>
    sealed class GateFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => Access(context.GetHttpContext()) != JobsAccess.None;
    }
}
