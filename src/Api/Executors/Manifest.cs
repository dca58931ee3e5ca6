using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Forecaster.Api.Executors;

/// <summary>A manifest, or the field (and why) that makes it impossible.</summary>
public abstract record ManifestOutcome;

public sealed record ManifestText(string Yaml) : ManifestOutcome;

public sealed record ManifestImpossible(string Field, string Message) : ManifestOutcome;

/// <summary>YAML written by hand: a fixed shape, every string double-quoted (so a name like `true` or `0x1` stays a string).</summary>
internal static partial class Yaml
{
    public static string Quote(string s)
    {
        var b = new StringBuilder("\"");
        foreach (var c in s)
        {
            b.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                _ when char.IsControl(c) => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => c.ToString(),
            });
        }
        return b.Append('"').ToString();
    }

    public static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>A Kubernetes object name (RFC 1123 subdomain): what metadata.name and scaleTargetRef.name accept.</summary>
    public static bool IsObjectName(string name) => name.Length <= 253 && ObjectName().IsMatch(name);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex ObjectName();
}
