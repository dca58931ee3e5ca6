# The Forecaster service image. Build context: the repository root.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Api/Forecaster.Api.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
# A non-root user owns FORECASTER_HOME: model artifacts go to $FORECASTER_HOME/models (Forecaster:Training:ModelsPath),
# where docker-compose and deploy/kubernetes mount a volume. A new volume takes this directory's owner.
RUN groupadd --system --gid 10001 forecaster \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/forecaster --no-create-home forecaster \
    && mkdir -p /var/lib/forecaster/models \
    && chown -R 10001:10001 /var/lib/forecaster
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    FORECASTER_HOME=/var/lib/forecaster
USER 10001:10001
EXPOSE 8080
VOLUME /var/lib/forecaster/models
ENTRYPOINT ["dotnet", "forecaster.dll", "serve"]
