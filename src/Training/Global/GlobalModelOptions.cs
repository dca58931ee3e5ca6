namespace Forecaster.Training.Global;

/// <summary>
/// Settings of the fleet-wide LightGBM model. The defaults were checked on a hold-out cut from the M4 Hourly history (its
/// last 48 hours), never on its truth, and sized so that one fit per run stays a small part of a fleet's training time.
/// </summary>
public sealed record GlobalModelOptions
{
    /// <summary>Training rows at most; origins and horizons are sampled down to it.</summary>
    public int MaxRows { get; init; } = 100_000;

    /// <summary>Series at most that training reads (every k-th of a larger fleet).</summary>
    public int MaxSeries { get; init; } = 2_000;

    /// <summary>Boosting rounds.</summary>
    public int Iterations { get; init; } = 100;

    /// <summary>Leaves per tree.</summary>
    public int Leaves { get; init; } = 31;

    /// <summary>Learning rate (shrinkage).</summary>
    public double LearningRate { get; init; } = 0.1;

    /// <summary>Fewest rows in a leaf.</summary>
    public int MinRowsPerLeaf { get; init; } = 100;

    /// <summary>Origins need this many points before them to be trained on.</summary>
    public int MinHistory { get; init; } = 24;

    /// <summary>
    /// Threads LightGBM trains with. One by default: its OpenMP threads spin while they wait, which on a shared two-core
    /// machine costs more than it gains on a model this size.
    /// </summary>
    public int Threads { get; init; } = 1;

    /// <summary>Seed of the row sampling and of LightGBM.</summary>
    public int Seed { get; init; } = 1;
}
