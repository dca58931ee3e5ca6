using System.Security.Cryptography;
using Forecaster.Api.Database;

namespace Forecaster.Api.Demo;

/// <summary>
/// The demo's API key, kept in FORECASTER_HOME/demo-api-key so that it stays the same across restarts (scripts, a browser
/// tab, the README's tour keep working) until `serve --demo --new-key` replaces it.
/// </summary>
public static class DemoKey
{
    public const string FileName = "demo-api-key";

    /// <summary>FORECASTER_HOME from configuration (environment or a host setting), else the embedded cluster's default home.</summary>
    public static string PathIn(IConfiguration configuration) =>
        Path.Combine(configuration["FORECASTER_HOME"] is { Length: > 0 } home ? Path.GetFullPath(home) : EmbeddedPostgres.DefaultHome(), FileName);

    /// <summary>The stored key, or a new one (stored) when there is none or <paramref name="renew"/> asks for one.</summary>
    public static string LoadOrCreate(string path, bool renew)
    {
        if (!renew && File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } stored)
        {
            return stored;
        }
        var key = "demo-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Readable by the owner only: it is a credential, even if a demo one.
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var writer = new StreamWriter(path, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options))
        {
            writer.WriteLine(key);
        }
        return key;
    }
}
