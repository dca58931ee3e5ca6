namespace Forecaster.Api.Dashboard;

/// <summary>
/// The web dashboard at `/`: static files built from Dashboard/src (TypeScript, Chart.js) into wwwroot and committed, so
/// the service needs no Node.js to run. Rebuild with `npm ci && npm run build` in src/Api/Dashboard after changing it.
/// </summary>
public static class DashboardSetup
{
    public static WebApplication UseDashboard(this WebApplication app)
    {
        app.UseDefaultFiles();
        app.UseStaticFiles();
        return app;
    }
}
