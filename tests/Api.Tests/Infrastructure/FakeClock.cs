namespace Forecaster.Api.Tests.Infrastructure;

/// <summary>A clock the test sets (Microsoft's FakeTimeProvider is not in our registry).</summary>
public sealed class FakeClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}
