namespace Forecaster.Api.Security;

/// <summary>
/// Headers on every answer, the dashboard's and Swagger UI's included: no MIME sniffing, no referrer leaving the service,
/// and no framing by another site (clickjacking); the pages frame nothing themselves.
/// </summary>
public static class SecurityHeaders
{
    public static WebApplication UseSecurityHeaders(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                headers.XFrameOptions = "DENY";
                headers.ContentSecurityPolicy = "frame-ancestors 'none'";
                return Task.CompletedTask;
            });
            return next(context);
        });
        return app;
    }
}

/// <summary>
/// `AllowedHosts` (semicolon-separated host names, `*` for any) is honoured by the host filter, which answers any other
/// Host with 400. Left unset while the service listens on loopback only (the default), only loopback names are allowed, so a
/// web page cannot reach the open read API through DNS rebinding; a service listening beyond loopback must name its hosts
/// or set `*` (see README).
/// </summary>
public static class HostDefaults
{
    public static readonly string[] Loopback = ["localhost", "127.0.0.1", "[::1]"];

    public static IServiceCollection AddForecasterHostFiltering(this IServiceCollection services)
    {
        services.AddOptions<Microsoft.AspNetCore.HostFiltering.HostFilteringOptions>().PostConfigure<IConfiguration>((o, configuration) =>
        {
            if (!string.IsNullOrWhiteSpace(configuration["AllowedHosts"]))
            {
                return;
            }
            var urls = configuration["urls"] ?? configuration["ASPNETCORE_URLS"] ?? "http://127.0.0.1:8080";
            if (urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).All(IsLoopback))
            {
                o.AllowedHosts = [.. Loopback];
            }
        });
        return services;
    }

    static bool IsLoopback(string url) =>
        Uri.TryCreate(url.Replace("://+", "://any", StringComparison.Ordinal).Replace("://*", "://any", StringComparison.Ordinal), UriKind.Absolute, out var uri)
        && (uri.IsLoopback || uri.Host == "localhost");
}
