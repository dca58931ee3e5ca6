namespace Forecaster.Training.Global;

/// <summary>
/// Settings of the fleet-wide LightGBM model. The defaults were tuned on a hold-out cut from the M4 Hourly history (its last
/// 48 hours), never on its truth, and keep one fit of a 10,000-series fleet within seconds on two cores.
/// </summary>
public sealed record GlobalModelOptions
{
    /// <summary>Training rows at most; origins and horizons are sampled down to it.</summary>
    public int MaxRows { get; init; } = 250_000;

    /// <summary>Series at most that training reads (every k-th of a larger fleet).</summary>
    public int MaxSeries { get; init; } = 2_000;

    /// <summary>Boosting rounds.</summary>
    public int Iterations { get; init; } = 200;

    /// <summary>Leaves per tree.</summary>
    public int Leaves { get; init; } = 63;

    /// <summary>Learning rate (shrinkage).</summary>
    public double LearningRate { get; init; } = 0.1;

    /// <summary>Fewest rows in a leaf.</summary>
    public int MinRowsPerLeaf { get; init; } = 100;

    /// <summary>Origins need this many points before them to be trained on.</summary>
    public int MinHistory { get; init; } = 24;

    /// <summary>Threads LightGBM trains with; 0 uses every core.</summary>
    public int Threads { get; init; }

    /// <summary>Seed of the row sampling and of LightGBM.</summary>
    public int Seed { get; init; } = 1;
}
