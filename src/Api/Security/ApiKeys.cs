using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Infrastructure;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Security;

/// <summary>
/// The accepted API keys: `Forecaster:ApiKeys` plus FORECASTER_API_KEYS (comma-separated); in demo mode with none
/// configured, one generated key that the service prints at start.
/// </summary>
public sealed class ApiKeyRing
{
    readonly byte[][] _hashes;

    public ApiKeyRing(IOptions<ForecasterOptions> options, IConfiguration configuration, ILogger<ApiKeyRing> logger)
    {
        var keys = options.Value.ApiKeys
            .Concat((configuration["FORECASTER_API_KEYS"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Where(k => k.Length > 0)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        if (keys.Count == 0 && options.Value.Demo)
        {
            GeneratedKey = Demo.DemoKey.LoadOrCreate(Demo.DemoKey.PathIn(configuration), options.Value.NewDemoKey);
            keys.Add(GeneratedKey);
        }
        _hashes = [.. keys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k)))];
        if (_hashes.Length == 0)
        {
            logger.LogWarning("No API keys are configured (Forecaster:ApiKeys or FORECASTER_API_KEYS): every write will be refused with 401");
        }
    }

    /// <summary>The key generated for a demo run, if any.</summary>
    public string? GeneratedKey { get; }

    public bool IsEmpty => _hashes.Length == 0;

    /// <summary>A stable, non-secret name for the key (its hash prefix), or null when the key is not accepted.</summary>
    public string? Identify(string presented)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        // Compare hashes in constant time so response timing says nothing about the keys.
        foreach (var known in _hashes)
        {
            if (CryptographicOperations.FixedTimeEquals(known, hash))
            {
                return "key-" + Convert.ToHexStringLower(hash)[..8];
            }
        }
        return null;
    }
}

/// <summary>The X-Api-Key authentication scheme.</summary>
public sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeyRing ring)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string Header = "X-Api-Key";

    /// <summary>HttpContext.Items key set when the request presented a key that was refused.</summary>
    public const string InvalidKey = "forecaster.invalid-key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(Header, out var values) || values.Count == 0 || values.Count == 1 && string.IsNullOrEmpty(values[0]))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        if (values.Count > 1)
        {
            // Judging only the first of several keys let a valid key vouch for whatever followed it: more than one is refused.
            Context.Items[InvalidKey] = true;
            return Task.FromResult(AuthenticateResult.Fail("Send exactly one X-Api-Key header."));
        }
        if (ring.Identify(values[0]!) is not { } name)
        {
            // Marked for the rate limiter: invalid keys share a bucket of their own, away from anonymous plan reads.
            Context.Items[InvalidKey] = true;
            return Task.FromResult(AuthenticateResult.Fail(
                $"The API key in {Header} is not known to this service (a demo key stays the same across restarts until `serve --demo --new-key`; otherwise see FORECASTER_API_KEYS)."));
        }
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = $"{SchemeName} header=\"{Header}\"";
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        // Say which it is: a missing header, several, or a key the service does not know need different fixes.
        var result = await HandleAuthenticateOnceSafeAsync();
        var message = result.Failure?.Message
            ?? $"The {Header} header is missing: send an API key in it (configured in FORECASTER_API_KEYS; `serve --demo` prints one).";
        await Context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = new HttpValidationProblemDetails(new Dictionary<string, string[]> { [Header] = [message] })
            {
                Status = StatusCodes.Status401Unauthorized,
                Title = "Unauthorized",
                Detail = message,
            },
        });
    }
}

public static class ApiKeyExtensions
{
    public const string WritePolicy = "write";
    public const string ReadPolicy = "read";

    /// <summary>Authentication, per-key rate limits and authorization, with the key ring built at start so a missing key is logged at once.</summary>
    public static WebApplication UseApiKeys(this WebApplication app)
    {
        app.Services.GetRequiredService<ApiKeyRing>();
        app.UseAuthentication();
        // After authentication, so that requests are limited per key; before authorization, so floods stay cheap.
        app.UseRateLimiter();
        app.UseAuthorization();
        return app;
    }

    public static IServiceCollection AddApiKeys(this IServiceCollection services)
    {
        services.AddSingleton<ApiKeyRing>();
        services.AddForecasterRateLimits();
        services.AddForecasterHostFiltering();
        services.AddAuthentication(ApiKeyHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeyHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(WritePolicy, p => p.RequireAuthenticatedUser())
            .AddPolicy(ReadPolicy, p => p.AddRequirements(ReadRequirement));
        services.AddSingleton<IPolicyEvaluator, ApiKeyPolicyEvaluator>();
        return services;
    }

    /// <summary>The read policy's one rule: a known key, or none needed for reads (requests are the resource the middleware passes).</summary>
    internal static readonly AssertionRequirement ReadRequirement = new(ctx =>
        ctx.User.Identity?.IsAuthenticated == true
        || ctx.Resource is HttpContext http && !http.RequestServices.GetRequiredService<IOptions<ForecasterOptions>>().Value.RequireApiKeyForReads);
}

/// <summary>
/// The framework's policy evaluator, except that a request under the read policy alone is admitted at once while reads need no
/// key (<see cref="ForecasterOptions.RequireApiKeyForReads"/> off): <see cref="ApiKeyExtensions.ReadRequirement"/> would admit
/// it anyway, and running the authorization service for that (a context, its handlers, the assertion) on every plan poll
/// costs the polled endpoints a good part of their time.
/// </summary>
public sealed class ApiKeyPolicyEvaluator(IOptions<ForecasterOptions> options) : IPolicyEvaluator
{
    static readonly Task<PolicyAuthorizationResult> Admitted = Task.FromResult(PolicyAuthorizationResult.Success());

    /// <summary>An anonymous request's result, once: AuthenticateResult exposes nothing to change, and anonymous reads are most polls.</summary>
    static readonly Task<AuthenticateResult> NoResult = Task.FromResult(AuthenticateResult.NoResult());

    /// <summary>
    /// For a policy without schemes of its own (every policy here) the framework's evaluator authenticates nothing again: it
    /// answers the request's result. The same, without building an authorization service (and its handlers) to do it.
    /// </summary>
    public Task<AuthenticateResult> AuthenticateAsync(AuthorizationPolicy policy, HttpContext context) =>
        policy.AuthenticationSchemes.Count > 0
            ? Framework(context).AuthenticateAsync(policy, context)
            : context.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult is { } result ? Task.FromResult(result)
            : context.User.Identity?.IsAuthenticated == true ? Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(context.User, "context.User")))
            : NoResult;

    public Task<PolicyAuthorizationResult> AuthorizeAsync(AuthorizationPolicy policy, AuthenticateResult authenticationResult, HttpContext context, object? resource) =>
        resource is HttpContext && !options.Value.RequireApiKeyForReads && policy.Requirements is [var only] && ReferenceEquals(only, ApiKeyExtensions.ReadRequirement)
            ? Admitted
            : Framework(context).AuthorizeAsync(policy, authenticationResult, context, resource);

    static PolicyEvaluator Framework(HttpContext context) => new(context.RequestServices.GetRequiredService<IAuthorizationService>());
}
