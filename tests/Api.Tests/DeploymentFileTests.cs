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

/// <summary>
/// deploy/kubernetes, the Dockerfile and docker-compose.yml checked together for what breaks silently: a probe on a path
/// the service does not serve, ports that do not line up, a models path the image's user cannot write, a compose file
/// that starts with a known key, a generated ScaledObject with fields KEDA does not have.
/// </summary>
public sealed class KubernetesManifestTests
{
    static string Root([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", ".."));

    static string Kube => Path.Combine(Root(), "deploy", "kubernetes");

    static List<YamlMappingNode> Load(string path)
    {
        var yaml = new YamlStream();
        using var reader = File.OpenText(path);
        yaml.Load(reader);
        return [.. yaml.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    static YamlMappingNode Kind(string kind) =>
        Directory.GetFiles(Kube, "*.yaml").Where(f => !f.EndsWith("kustomization.yaml", StringComparison.Ordinal))
            .SelectMany(Load).Single(d => S(d, "kind") == kind);

    static YamlNode At(YamlNode node, params object[] path)
    {
        foreach (var step in path)
        {
            node = step is int i ? ((YamlSequenceNode)node)[i] : ((YamlMappingNode)node)[(string)step];
        }
        return node;
    }

    static string S(YamlNode node, params object[] path) => ((YamlScalarNode)At(node, path)).Value!;

    static YamlMappingNode Container() => (YamlMappingNode)At(Kind("Deployment"), "spec", "template", "spec", "containers", 0);

    /// <summary>The HTTP paths of the Deployment's startup, liveness and readiness probes.</summary>
    internal static IEnumerable<(string Probe, string Path)> ProbePaths() =>
        new[] { "startupProbe", "livenessProbe", "readinessProbe" }.Select(p => (p, S(Container(), p, "httpGet", "path")));

    static string[] DockerfileLines() => File.ReadAllLines(Path.Combine(Root(), "Dockerfile"));

    /// <summary>ENV values of the Dockerfile's final stage (`ENV A=x \ B=y` too).</summary>
    static Dictionary<string, string> DockerEnv()
    {
        var text = string.Join('\n', DockerfileLines()).Replace("\\\n", " ", StringComparison.Ordinal);
        var final = text[text.LastIndexOf("\nFROM ", StringComparison.Ordinal)..];
        return final.Split('\n').Where(l => l.StartsWith("ENV ", StringComparison.Ordinal))
            .SelectMany(l => l[4..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(kv => kv.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv[1]);
    }

    [Fact]
    public void EveryManifestParsesAndTheKustomizationListsExactlyThem()
    {
        var files = Directory.GetFiles(Kube, "*.yaml").Select(Path.GetFileName).Where(f => f != "kustomization.yaml").Order().ToArray();
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            foreach (var doc in Load(Path.Combine(Kube, file!)))
            {
                Assert.False(string.IsNullOrEmpty(S(doc, "apiVersion")), file);
                Assert.False(string.IsNullOrEmpty(S(doc, "metadata", "name")), file);
            }
        }
        var kustomization = Load(Path.Combine(Kube, "kustomization.yaml")).Single();
        var listed = ((YamlSequenceNode)kustomization["resources"]).Select(r => ((YamlScalarNode)r).Value).Order().ToArray();
        Assert.Equal(files, listed);
        var kinds = files.SelectMany(f => Load(Path.Combine(Kube, f!))).Select(d => S(d, "kind")).ToHashSet();
        Assert.Superset(new HashSet<string> { "Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ServiceMonitor" }, kinds);
    }

    [Fact]
    public void PortsLineUpFromTheImageToTheServiceMonitor()
    {
        var container = Container();
        var port = (YamlMappingNode)At(container, "ports", 0);
        var (portName, containerPort) = (S(port, "name"), int.Parse(S(port, "containerPort"), System.Globalization.CultureInfo.InvariantCulture));
        // Where the service listens: the ConfigMap's ASPNETCORE_URLS, the image's, and the port it exposes.
        Assert.Equal(containerPort, new Uri(S(Kind("ConfigMap"), "data", "ASPNETCORE_URLS").Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port);
        Assert.Equal(containerPort, new Uri(DockerEnv()["ASPNETCORE_URLS"].Replace("0.0.0.0", "localhost", StringComparison.Ordinal)).Port);
        Assert.Contains($"EXPOSE {containerPort}", DockerfileLines());
        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
        {
            Assert.Equal(portName, S(container, probe, "httpGet", "port"));
        }
        var service = Kind("Service");
        Assert.Equal(portName, S(service, "spec", "ports", 0, "targetPort"));
        Assert.Equal(S(service, "spec", "ports", 0, "name"), S(Kind("ServiceMonitor"), "spec", "endpoints", 0, "port"));
        Assert.Equal("/metrics", S(Kind("ServiceMonitor"), "spec", "endpoints", 0, "path"));
        // Selectors reach the pods.
        var podLabels = (YamlMappingNode)At(Kind("Deployment"), "spec", "template", "metadata", "labels");
        foreach (var selector in new[] { At(service, "spec", "selector"), At(Kind("PodDisruptionBudget"), "spec", "selector", "matchLabels"), At(Kind("Deployment"), "spec", "selector", "matchLabels") })
        {
            foreach (var (key, value) in (YamlMappingNode)selector)
            {
                Assert.Equal(((YamlScalarNode)value).Value, ((YamlScalarNode)podLabels[key]).Value);
            }
        }
        var serviceLabels = (YamlMappingNode)At(service, "metadata", "labels");
        foreach (var (key, value) in (YamlMappingNode)At(Kind("ServiceMonitor"), "spec", "selector", "matchLabels"))
        {
            Assert.Equal(((YamlScalarNode)value).Value, ((YamlScalarNode)serviceLabels[key]).Value);
        }
    }

    [Fact]
    public void ThePodRunsNonRootOnAReadOnlyRootWithSecretsFromTheSecret()
    {
        var pod = At(Kind("Deployment"), "spec", "template", "spec");
        Assert.Equal("true", S(pod, "securityContext", "runAsNonRoot"));
        var container = Container();
        Assert.Equal("true", S(container, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", S(container, "securityContext", "allowPrivilegeEscalation"));
        Assert.True(((YamlMappingNode)At(container, "resources")).Children.ContainsKey("requests"));
        Assert.True(((YamlMappingNode)At(container, "resources")).Children.ContainsKey("limits"));
        var env = ((YamlSequenceNode)container["env"]).Cast<YamlMappingNode>().ToDictionary(e => S(e, "name"));
        foreach (var name in new[] { "FORECASTER_DB", "FORECASTER_API_KEYS" })
        {
            Assert.Equal("forecaster", S(env[name], "valueFrom", "secretKeyRef", "name"));
        }
        // No secret in the ConfigMap.
        var config = (YamlMappingNode)At(Kind("ConfigMap"), "data");
        Assert.DoesNotContain(config.Children.Keys, k => ((YamlScalarNode)k).Value is "FORECASTER_DB" or "FORECASTER_API_KEYS");
    }

    [Fact]
    public void TheImagesUserCanWriteTheModelsPathWhereverItRuns()
    {
        // The path training writes to: Forecaster:Training:ModelsPath under FORECASTER_HOME.
        var home = DockerEnv()["FORECASTER_HOME"];
        var models = Path.Combine(home, new global::Forecaster.Api.Training.TrainingOptions().ModelsPath);
        var lines = DockerfileLines();
        var user = lines.Last(l => l.StartsWith("USER ", StringComparison.Ordinal))[5..].Split(':');
        Assert.NotEqual("0", user[0]);
        Assert.NotEqual("root", user[0]);
        var text = string.Join('\n', lines);
        Assert.Contains($"mkdir -p {models}", text, StringComparison.Ordinal);
        Assert.Contains($"chown -R {user[0]}:{user[1]} {home}", text, StringComparison.Ordinal);
        Assert.Contains($"VOLUME {models}", lines);

        // Kubernetes: the same user, the same home, a writable volume exactly there and at /tmp (the root is read-only).
        var pod = At(Kind("Deployment"), "spec", "template", "spec");
        Assert.Equal(user[0], S(pod, "securityContext", "runAsUser"));
        Assert.Equal(user[1], S(pod, "securityContext", "fsGroup"));
        Assert.Equal(home, S(Kind("ConfigMap"), "data", "FORECASTER_HOME"));
        var mounts = ((YamlSequenceNode)Container()["volumeMounts"]).Cast<YamlMappingNode>().Select(m => S(m, "mountPath")).ToArray();
        Assert.Contains(models, mounts);
        Assert.Contains("/tmp", mounts);

        // docker-compose: the models volume is mounted where the service writes.
        var compose = Load(Path.Combine(Root(), "docker-compose.yml")).Single();
        var volumes = ((YamlSequenceNode)At(compose, "services", "forecaster", "volumes")).Select(v => ((YamlScalarNode)v).Value!).ToArray();
        Assert.Contains(volumes, v => v.Split(':')[1].Split(' ')[0] == models);
    }

    [Fact]
    public void ComposeHasNoWorkingDefaultApiKey()
    {
        var compose = Load(Path.Combine(Root(), "docker-compose.yml")).Single();
        var keys = S(compose, "services", "forecaster", "environment", "FORECASTER_API_KEYS");
        // ${VAR:?message}: compose refuses to start, printing the message, when the variable is unset or empty.
        Assert.Matches(@"^\$\{FORECASTER_API_KEYS:\?[^}]*set FORECASTER_API_KEYS[^}]*\}$", keys);
    }

    /// <summary>The ScaledObject and TriggerAuthentication fields KEDA 2.x defines (keda.sh/v1alpha1), by path.</summary>
    static readonly Dictionary<string, string[]> KedaFields = new()
    {
        ["ScaledObject"] = ["apiVersion", "kind", "metadata", "spec"],
        ["TriggerAuthentication"] = ["apiVersion", "kind", "metadata", "spec"],
        ["metadata"] = ["name", "namespace", "labels", "annotations"],
        ["ScaledObject.spec"] = ["scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"],
        ["scaleTargetRef"] = ["apiVersion", "kind", "name", "envSourceContainerName"],
        ["fallback"] = ["failureThreshold", "replicas", "behavior"],
        ["advanced"] = ["restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"],
        ["horizontalPodAutoscalerConfig"] = ["name", "behavior"],
        ["behavior"] = ["scaleUp", "scaleDown"],
        ["rules"] = ["stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"],
        ["policy"] = ["type", "value", "periodSeconds"],
        ["trigger"] = ["type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"],
        ["metrics-api"] = ["url", "format", "valueLocation", "targetValue", "activationTargetValue", "unsafeSsl", "aggregateFromKubeServiceEndpoints", "aggregationType", "authMode", "method", "keyParamName"],
        ["cpu"] = ["value", "containerName"],
        ["authenticationRef"] = ["name", "kind"],
        ["TriggerAuthentication.spec"] = ["secretTargetRef", "env", "podIdentity"],
        ["secretTargetRef"] = ["parameter", "name", "key"],
    };

    static void Fields(YamlNode node, string schema)
    {
        var keys = ((YamlMappingNode)node).Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToArray();
        Assert.All(keys, k => Assert.True(KedaFields[schema].Contains(k), $"{schema} has no field '{k}'"));
    }

    [Theory]
    [InlineData(false, """{"minReplicas":2,"maxReplicas":40}""")]
    [InlineData(true, """{"minReplicas":0,"maxReplicas":7,"leadMinutes":0,"targetUtilization":0.55,"maxBreach":"exceed"}""")]
    [InlineData(true, """{"minReplicas":3,"maxReplicas":300,"leadMinutes":30,"windows":[{"days":"Mon-Fri","from":"08:00","to":"18:00","timeZone":"Europe/Berlin","minReplicas":10,"maxReplicas":400}]}""")]
    public void GeneratedScaledObjectsUseOnlyKedasSchemaFields(bool readsNeedKey, string policy)
    {
        var outcome = global::Forecaster.Api.Executors.ExecutorsApi.ScaledObject(
            new global::Forecaster.Api.Resources.ResourceRow { Name = "checkout", Kind = "service", Policy = policy }.ToResource(), new global::Forecaster.Api.Executors.ExecutorOptions(), readsNeedKey);
        var yaml = new YamlStream();
        yaml.Load(new StringReader(((global::Forecaster.Api.Executors.ManifestText)outcome).Yaml));
        var docs = yaml.Documents.Select(d => (YamlMappingNode)d.RootNode).ToArray();
        Assert.Equal(readsNeedKey ? 2 : 1, docs.Length);
        foreach (var doc in docs)
        {
            var kind = S(doc, "kind");
            Assert.Equal("keda.sh/v1alpha1", S(doc, "apiVersion"));
            Fields(doc, kind);
            Fields(doc["metadata"], "metadata");
            Fields(doc["spec"], $"{kind}.spec");
            if (kind == "TriggerAuthentication")
            {
                Assert.All(((YamlSequenceNode)At(doc, "spec", "secretTargetRef")).Children, s => Fields(s, "secretTargetRef"));
                continue;
            }
            var spec = doc["spec"];
            Fields(At(spec, "scaleTargetRef"), "scaleTargetRef");
            Fields(At(spec, "fallback"), "fallback");
            Assert.Contains(S(spec, "fallback", "behavior"), new[] { "static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower" });
            Fields(At(spec, "advanced"), "advanced");
            Fields(At(spec, "advanced", "horizontalPodAutoscalerConfig"), "horizontalPodAutoscalerConfig");
            var behavior = At(spec, "advanced", "horizontalPodAutoscalerConfig", "behavior");
            Fields(behavior, "behavior");
            foreach (var direction in new[] { "scaleUp", "scaleDown" })
            {
                var rules = At(behavior, direction);
                Fields(rules, "rules");
                Assert.InRange(int.Parse(S(rules, "stabilizationWindowSeconds"), System.Globalization.CultureInfo.InvariantCulture), 0, 3600);
                Assert.Contains(S(rules, "selectPolicy"), new[] { "Max", "Min", "Disabled" });
                foreach (var p in ((YamlSequenceNode)At(rules, "policies")).Children)
                {
                    Fields(p, "policy");
                    Assert.Contains(S(p, "type"), new[] { "Pods", "Percent" });
                    Assert.True(int.Parse(S(p, "value"), System.Globalization.CultureInfo.InvariantCulture) > 0);
                    Assert.InRange(int.Parse(S(p, "periodSeconds"), System.Globalization.CultureInfo.InvariantCulture), 1, 1800);
                }
            }
            var min = int.Parse(S(spec, "minReplicaCount"), System.Globalization.CultureInfo.InvariantCulture);
            var max = int.Parse(S(spec, "maxReplicaCount"), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(min >= 1 && min <= max, $"{min}..{max}");
            Assert.InRange(int.Parse(S(spec, "fallback", "replicas"), System.Globalization.CultureInfo.InvariantCulture), min, max);
            foreach (YamlMappingNode trigger in (YamlSequenceNode)At(spec, "triggers"))
            {
                Fields(trigger, "trigger");
                var type = S(trigger, "type");
                Fields(trigger["metadata"], type);
                Assert.Contains(S(trigger, "metricType"), type == "cpu" ? new[] { "Utilization", "AverageValue" } : new[] { "AverageValue", "Value" });
                if (trigger.Children.ContainsKey("authenticationRef"))
                {
                    Fields(trigger["authenticationRef"], "authenticationRef");
                    Assert.Equal(S(docs[0], "metadata", "name"), S(trigger, "authenticationRef", "name"));
                }
            }
            // The plan trigger reads /keda of this resource, with AverageValue semantics.
            var plan = (YamlMappingNode)At(spec, "triggers", 0);
            Assert.Equal(("metrics-api", "AverageValue", "1", "desiredReplicas"), (S(plan, "type"), S(plan, "metricType"), S(plan, "metadata", "targetValue"), S(plan, "metadata", "valueLocation")));
            Assert.EndsWith("/api/v1/resources/checkout/keda", S(plan, "metadata", "url"), StringComparison.Ordinal);
        }
    }
}
