using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Forecaster.Api.Sources;

/// <summary>How to reach one Prometheus-compatible server (Prometheus, Thanos, VictoriaMetrics, Mimir).</summary>
public class PrometheusServerOptions
{
    /// <summary>Base address, e.g. http://prometheus.monitoring:9090 (the API paths are appended).</summary>
    public string? Url { get; set; }

    /// <summary>Sent as `Authorization: Bearer ...`.</summary>
    public string? BearerToken { get; set; }

    /// <summary>Basic authentication (with <see cref="Password"/>).</summary>
    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Extra headers on every request (e.g. `X-Scope-OrgID` for Mimir tenants).</summary>
    public Dictionary<string, string> Headers { get; set; } = [];

    /// <summary>A PEM file of the CA that signs the server's certificate, for a private CA.</summary>
    public string? CaFile { get; set; }

    /// <summary>Timeout of one attempt; a request retries up to <see cref="Retries"/> times within three times this.</summary>
    [Range(1, 600)]
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Requests in flight to this server at once.</summary>
    [Range(1, 256)]
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>Retries of a failed request (with exponential backoff and jitter).</summary>
    [Range(0, 10)]
    public int Retries { get; set; } = 3;
}

/// <summary>
/// The `Forecaster:Prometheus` section: the default server at the top level, named servers under `Servers`, and how
/// history is read (step, pull interval, backfill depth). Environment: `Forecaster__Prometheus__Url` etc.
/// </summary>
public sealed class PrometheusOptions : PrometheusServerOptions
{
    public const string Section = "Forecaster:Prometheus";

    /// <summary>Further servers by name; a source names one in `server`, or uses the default (the top-level Url).</summary>
    public Dictionary<string, PrometheusServerOptions> Servers { get; set; } = [];

    /// <summary>Resolution of query_range; the stored points are averaged onto hours as pushed samples are.</summary>
    [Range(1, 3600)]
    public int StepSeconds { get; set; } = 60;

    /// <summary>How often each source is pulled incrementally.</summary>
    [Range(1, 1440)]
    public int PullMinutes { get; set; } = 5;

    /// <summary>History read when a source is created or its query changes.</summary>
    [Range(1, 400)]
    public int BackfillDays { get; set; } = 35;

    /// <summary>Each pull re-reads this much before the watermark (late samples, rule evaluation lag) and overwrites it.</summary>
    [Range(0, 1440)]
    public int OverlapMinutes { get; set; } = 10;

    /// <summary>Sources one instance claims per round.</summary>
    [Range(1, 100_000)]
    public int BatchSources { get; set; } = 500;

    /// <summary>Schedule the pull rounds from this instance (a recurring Hangfire job; any instance's pull workers run them, and the
    /// claims keep several instances from pulling one series at once).</summary>
    public bool Puller { get; set; } = true;

    /// <summary>The server a source names ('' for the default), or null when none is configured under that name.</summary>
    public PrometheusServerOptions? Server(string name) =>
        name.Length == 0 ? (Url is null ? null : this) : Servers.GetValueOrDefault(name) is { Url: not null } s ? s : null;

    /// <summary>Every configured server: '' for the default, then the named ones.</summary>
    public IEnumerable<(string Name, PrometheusServerOptions Server)> AllServers() =>
        (Url is null ? [] : new[] { ("", (PrometheusServerOptions)this) }).Concat(Servers.Where(s => s.Value.Url is not null).Select(s => (s.Key, s.Value)));

    /// <summary>The server's name as users see it.</summary>
    public static string Display(string name) => name.Length == 0 ? "default" : name;
}

/// <summary>What data annotations cannot check: URLs, files, and the named servers' own ranges.</summary>
sealed class PrometheusOptionsValidator : IValidateOptions<PrometheusOptions>
{
    public ValidateOptionsResult Validate(string? name, PrometheusOptions options)
    {
        var errors = new List<string>();
        Check("", options);
        foreach (var (key, server) in options.Servers)
        {
            if (server.Url is null)
            {
                errors.Add($"{PrometheusOptions.Section}:Servers:{key}:Url is required");
            }
            Check($"Servers:{key}:", server);
            var results = new List<ValidationResult>();
            Validator.TryValidateObject(server, new ValidationContext(server), results, validateAllProperties: true);
            errors.AddRange(results.Select(r => $"{PrometheusOptions.Section}:Servers:{key}:{string.Join(',', r.MemberNames)}: {r.ErrorMessage}"));
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Check(string prefix, PrometheusServerOptions s)
        {
            if (s.Url is not null && (!Uri.TryCreate(s.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
            {
                errors.Add($"{PrometheusOptions.Section}:{prefix}Url: '{s.Url}' is not an absolute http(s) URL");
            }
            if (s.CaFile is not null && !File.Exists(s.CaFile))
            {
                errors.Add($"{PrometheusOptions.Section}:{prefix}CaFile: '{s.CaFile}' does not exist");
            }
            if (s.Password is not null && s.Username is null)
            {
                errors.Add($"{PrometheusOptions.Section}:{prefix}Username: is required with Password");
            }
        }
    }
}
