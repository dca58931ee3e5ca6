using System.Text.Json.Serialization;
using Forecaster.Api.Demo;
using Forecaster.Api.Errors;

namespace Forecaster.Api;

public static class ForecasterHost
{
    /// <summary>Options, clock, JSON and logging shared by every part of the service.</summary>
    public static WebApplicationBuilder AddForecasterHost(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ForecasterOptions>()
            .BindConfiguration(ForecasterOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.CamelCase));
        });
        // Structured logs: one JSON object per line for log shippers; one readable line each on a terminal.
        builder.Services.AddOptions<LoggingFormatOptions>().BindConfiguration(LoggingFormatOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Logging.ClearProviders();
        // UTC for real (the JSON format's Z), and scopes on, which is where TraceId/SpanId travel.
        if (LoggingFormatOptions.UseText(builder.Configuration[$"{LoggingFormatOptions.Section}:Format"], Console.IsOutputRedirected))
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        }
        else
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
                o.IncludeScopes = true;
            });
        }
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        if (builder.Configuration["urls"] is null && builder.Configuration["ASPNETCORE_URLS"] is null)
        {
            builder.WebHost.UseUrls("http://127.0.0.1:8080");
        }
        if (builder.Configuration.GetValue<bool>($"{ForecasterOptions.Section}:Demo"))
        {
            builder.Services.AddHostedService<DemoSeeder>();
            builder.Services.AddSingleton<DemoState>();
            builder.Services.AddHealthChecks().AddCheck<DemoHealthCheck>("demo", tags: ["ready"]);
        }
        return builder;
    }
}

/// <summary>`Forecaster:Logging:Format`: <c>text</c>, <c>json</c>, or <c>auto</c> (text on a terminal, JSON when output is redirected).</summary>
public sealed class LoggingFormatOptions
{
    public const string Section = "Forecaster:Logging";

    [System.ComponentModel.DataAnnotations.RegularExpression("^(text|json|auto)$", ErrorMessage = "Forecaster:Logging:Format must be text, json or auto")]
    public string Format { get; set; } = "auto";

    /// <summary>Whether console logs are text: asked for, or auto on a terminal (a redirected stdout is a pipe or a file: JSON).</summary>
    public static bool UseText(string? format, bool outputRedirected) => format?.Trim().ToLowerInvariant() switch
    {
        "text" => true,
        "json" => false,
        _ => !outputRedirected,
    };
}
