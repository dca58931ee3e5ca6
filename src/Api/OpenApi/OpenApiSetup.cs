using System.Text.Json.Nodes;
using Forecaster.Api.Security;
using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Forecaster.Api.OpenApi;

/// <summary>An example request body shown in Swagger UI.</summary>
public sealed record RequestExample(string Body, string ContentType);

public static class OpenApiSetup
{
    public static IServiceCollection AddForecasterOpenApi(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Forecaster",
                Version = "v1",
                Description = "Forecasts load and serves scale plans ahead of it. The [dashboard](/) shows forecasts and plans; the [jobs dashboard](/jobs) " +
                              "shows the background jobs (nightly training, shards, planning, simulations, pulls). Writes need an `X-Api-Key` header " +
                              "(Authorize button); errors are RFC 7807 problem documents naming the field and row.",
            });
            o.AddSecurityDefinition(ApiKeyHandler.SchemeName, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyHandler.Header,
                Description = "An API key from Forecaster:ApiKeys or FORECASTER_API_KEYS (printed at start with --demo).",
            });
            o.OperationFilter<ForecasterOperationFilter>();
        });
        return services;
    }

    public static WebApplication UseForecasterOpenApi(this WebApplication app)
    {
        // Only /swagger paths reach them: otherwise both run for every request, Swagger's resolving its document
        // provider (a SwaggerGenerator and its options) and Swagger UI's matching a regular expression, to pass it on.
        app.UseWhen(http => http.Request.Path.StartsWithSegments("/swagger"), swagger =>
        {
            swagger.UseSwagger();
            swagger.UseSwaggerUI(o =>
            {
                o.SwaggerEndpoint("/swagger/v1/swagger.json", "Forecaster v1");
                o.DocumentTitle = "Forecaster API";
            });
        });
        return app;
    }

    public static RouteHandlerBuilder WithRequestExample(this RouteHandlerBuilder builder, string body, string contentType = "application/json") =>
        builder.WithMetadata(new RequestExample(body, contentType));
}

/// <summary>Adds to every operation what the endpoint metadata implies: key requirement, examples and error responses.</summary>
sealed class ForecasterOperationFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        operation.Responses ??= [];

        if (metadata.OfType<IAuthorizeData>().Any(a => a.Policy == ApiKeyExtensions.WritePolicy))
        {
            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyHandler.SchemeName, context.Document)] = [] });
            AddProblem(operation, "401", "Missing or invalid X-Api-Key");
        }
        if (metadata.OfType<RequestExample>().FirstOrDefault() is { } example)
        {
            operation.RequestBody ??= new OpenApiRequestBody { Content = new Dictionary<string, IOpenApiMediaType>(), Required = true };
            if (operation.RequestBody.Content is { } content)
            {
                if (!content.TryGetValue(example.ContentType, out var media))
                {
                    // A streamed body (CSV) has no bound type for the generator to describe.
                    media = new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
                    content[example.ContentType] = media;
                }
                if (media is OpenApiMediaType concrete)
                {
                    concrete.Example = example.ContentType == "application/json" ? JsonNode.Parse(example.Body) : JsonValue.Create(example.Body);
                }
            }
        }
        if (operation.Parameters is { Count: > 0 } || operation.RequestBody is not null)
        {
            AddProblem(operation, "400", "Invalid input: a validation problem naming each bad field (and row)");
        }
        if (context.ApiDescription.RelativePath?.Contains("{name}", StringComparison.Ordinal) == true)
        {
            AddProblem(operation, "404", "No resource with that name");
        }
    }

    static void AddProblem(OpenApiOperation operation, string status, string description)
    {
        if (operation.Responses!.ContainsKey(status))
        {
            return;
        }
        operation.Responses[status] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["application/problem+json"] = new OpenApiMediaType
                {
                    Example = JsonNode.Parse($$"""{"type":"https://tools.ietf.org/html/rfc9110","title":"{{description}}","status":{{status}},"detail":"..."}"""),
                },
            },
        };
    }
}
