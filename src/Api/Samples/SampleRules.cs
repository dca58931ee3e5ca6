using System.Text.RegularExpressions;

namespace Forecaster.Api.Samples;

/// <summary>One rejected input row: which row (CSV line number or JSON array index), which field, and why.</summary>
public sealed record SampleError(long Row, string Field, string Message);

/// <summary>The checks every sample passes before anything is stored, shared by the JSON, CSV and CLI paths.</summary>
public static partial class SampleRules
{
    /// <summary>Resource names appear in URLs, so they stay URL-safe.</summary>
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\z")]
    public static partial Regex ResourceName();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_.]{0,63}\z")]
    public static partial Regex MetricName();

    public static string? CheckResourceName(string name) =>
        name.Length == 0 ? "is empty"
        : ResourceName().IsMatch(name) ? null
        : $"'{Trim(name)}' is not a valid resource name (letters, digits, '.', '_', '-', at most 128, starting with a letter or digit)";

    public static string? CheckMetric(string metric) =>
        metric.Length == 0 ? "is empty"
        : MetricName().IsMatch(metric) ? null
        : $"'{Trim(metric)}' is not a valid metric name (letters, digits, '_', '.', at most 64, starting with a letter or '_')";

    /// <summary>
    /// Aggregates over stored samples (hourly means for training and planning, the samples query's steps, simulation
    /// inputs) leave out values beyond this, written as `abs(value) &lt;= 1e100` beside each query. A sum of any number of
    /// such values, or of their squares (avg and variance accumulate both), stays finite, so no stored value can make an
    /// aggregate overflow (issue 13: one 1.8e308 stopped the nightly run for the whole fleet). NaN and infinities fail the
    /// test too. The configured <see cref="ForecasterOptions.MaxSampleValue"/> can be no larger.
    /// </summary>
    public const double AggregateLimit = 1e100;

    /// <param name="max">The configured <see cref="ForecasterOptions.MaxSampleValue"/>.</param>
    public static string? CheckValue(double value, double max) =>
        !double.IsFinite(value) ? $"{value} is not a finite number"
        : value < 0 ? $"{value} is negative; load, cpu and memory samples are never below zero"
        : value > max ? $"{value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} is above the largest accepted value {max.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} (Forecaster:MaxSampleValue)"
        : null;

    public static string? CheckTime(DateTime utc, DateTimeOffset now, int maxAgeDays) =>
        utc > now.UtcDateTime.AddDays(1) ? $"{utc:O} is more than 1 day in the future"
        : utc < now.UtcDateTime.AddDays(-maxAgeDays) ? $"{utc:O} is more than {maxAgeDays} days in the past"
        : null;

    static string Trim(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
