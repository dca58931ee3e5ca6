using Npgsql;
using YamlDotNet.RepresentationModel;

namespace Forecaster.Api.Tests;

/// <summary>No Docker engine runs on our machines, so docker-compose.yml and the Dockerfile are checked by reading them.</summary>
public sealed class DeploymentFileTests
{
    static string Root([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", ".."));

    static YamlMappingNode Compose()
    {
        var yaml = new YamlStream();
        using var reader = File.OpenText(Path.Combine(Root(), "docker-compose.yml"));
        yaml.Load(reader);
        return (YamlMappingNode)yaml.Documents[0].RootNode;
    }

    static YamlMappingNode Map(YamlNode node, string key) => (YamlMappingNode)((YamlMappingNode)node)[key];

    static string Scalar(YamlNode node, string key) => ((YamlScalarNode)((YamlMappingNode)node)[key]).Value!;

    [Fact]
    public void PostgresIsVersion15OrLaterWithAVolumeAndAHealthCheck()
    {
        var postgres = Map(Map(Compose(), "services"), "postgres");
        var image = Scalar(postgres, "image");
        Assert.StartsWith("postgres:", image, StringComparison.Ordinal);
        Assert.True(int.Parse(image.Split(':')[1].Split('.', '-')[0], System.Globalization.CultureInfo.InvariantCulture) >= 15, image);
        var volume = ((YamlSequenceNode)postgres["volumes"]).Children.Select(v => ((YamlScalarNode)v).Value!).Single();
        Assert.EndsWith(":/var/lib/postgresql/data", volume, StringComparison.Ordinal);
        Assert.True(Map(Compose(), "volumes").Children.ContainsKey(volume.Split(':')[0]));
        Assert.Contains("pg_isready", string.Join(' ', ((YamlSequenceNode)Map(postgres, "healthcheck")["test"]).Children), StringComparison.Ordinal);
    }

    [Fact]
    public void TheServiceIsBuiltFromTheDockerfileAndConnectsThroughForecasterDb()
    {
        var services = Map(Compose(), "services");
        var service = Map(services, "forecaster");
        var build = Map(service, "build");
        var dockerfile = Path.Combine(Root(), Scalar(build, "context"), Scalar(build, "dockerfile"));
        Assert.True(File.Exists(dockerfile));
        Assert.Equal("service_healthy", Scalar(Map(Map(service, "depends_on"), "postgres"), "condition"));

        var environment = Map(service, "environment");
        var cs = new NpgsqlConnectionStringBuilder(Scalar(environment, "FORECASTER_DB"));
        Assert.Equal("postgres", cs.Host);
        var postgresEnv = Map(Map(services, "postgres"), "environment");
        Assert.Equal(Scalar(postgresEnv, "POSTGRES_USER"), cs.Username);
        Assert.Equal(Scalar(postgresEnv, "POSTGRES_PASSWORD"), cs.Password);
        Assert.Equal(Scalar(postgresEnv, "POSTGRES_DB"), cs.Database);

        var text = File.ReadAllText(dockerfile);
        var publish = text.Split('\n').Single(l => l.Contains("dotnet publish", StringComparison.Ordinal));
        var project = publish.Split(' ').Single(w => w.EndsWith(".csproj", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(Root(), project)), project);
        Assert.Contains("\"forecaster.dll\", \"serve\"", text, StringComparison.Ordinal);
    }
}
