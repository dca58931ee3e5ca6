using System.ComponentModel.DataAnnotations;

namespace Forecaster.Api.Executors;

/// <summary>The `Forecaster:Executors` configuration section: what generated manifests point executors at.</summary>
public sealed class ExecutorOptions
{
    public const string Section = "Forecaster:Executors";

    /// <summary>
    /// The address executors reach Forecaster at, as written into generated ScaledObjects. The default is the Service of
    /// deploy/kubernetes (`forecaster` in namespace `forecaster`).
    /// </summary>
    [Required, Url]
    public string PublicUrl { get; set; } = "http://forecaster.forecaster.svc:8080";

    /// <summary>The Secret (and its key) holding the read key, referenced by the TriggerAuthentication when reads need a key.</summary>
    [Required, RegularExpression("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    public string ReadKeySecret { get; set; } = "forecaster-read-key";
}
