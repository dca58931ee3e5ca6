using System.Text.Json.Serialization;
using Forecaster.Training.Baselines;
using Forecaster.Training.Regression;
using Forecaster.Training.Ssa;

namespace Forecaster.Training.Forecasting;

/// <summary>
/// A fitted forecasting model: everything it needs to forecast the steps after its training window is in the record,
/// so a model read back from its JSON artifact forecasts exactly as it did when fitted.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "algorithm")]
[JsonDerivedType(typeof(SsaModel), "ssa")]
[JsonDerivedType(typeof(RidgeModel), "ridge")]
[JsonDerivedType(typeof(SeasonalNaiveModel), "seasonal-naive")]
[JsonDerivedType(typeof(CombinationModel), "combination")]
[JsonDerivedType(typeof(Global.GlobalForecastModel), "global")]
[JsonDerivedType(typeof(Smoothing.SmoothingModel), "smoothing")]
public interface IForecastModel
{
    /// <summary>Short name shown in forecast output, e.g. <c>ssa(L=169,r=12)</c>, <c>ridge</c>, <c>snaive24</c>.</summary>
    string Name { get; }

    /// <summary>Point forecasts for the next <paramref name="horizon"/> steps and the model's own standard errors.</summary>
    ModelForecast Forecast(int horizon);
}

/// <summary>A model's point forecasts and standard errors by horizon step (index 0 is one step ahead).</summary>
public sealed record ModelForecast(double[] Point, double[] StandardError);
