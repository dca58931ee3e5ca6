using System.Text.Json.Serialization;
using Forecaster.Api.Demo;

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
        // Structured logs: one JSON object per line, ready for any log shipper.
        builder.Logging.ClearProviders();
        // UTC for real (the format's Z), and scopes on, which is where TraceId/SpanId travel.
        builder.Logging.AddJsonConsole(o =>
        {
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
            o.IncludeScopes = true;
        });
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        if (builder.Configuration["urls"] is null && builder.Configuration["ASPNETCORE_URLS"] is null)
        {
            builder.WebHost.UseUrls("http://127.0.0.1:8080");
        }
        if (builder.Configuration.GetValue<bool>($"{ForecasterOptions.Section}:Demo"))
        {
            builder.Services.AddHostedService<DemoSeeder>();
        }
        return builder;
    }
}
