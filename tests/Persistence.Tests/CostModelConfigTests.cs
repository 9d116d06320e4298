using PtActors.Engine.Cost;
using Xunit;

namespace PtActors.Persistence.Tests;

public class CostModelConfigTests
{
    [Fact]
    public void TheEmbeddedDefaultsAreTheModelsDefaults()
    {
        Assert.Equal(CostModel.Default, CostModelConfig.Defaults());
        // Every key of the model is in the file, and the file has no other.
        string text = PersistenceConfig.Template(CostModelConfig.FileName);
        foreach (string key in CostModelConfig.Keys)
            Assert.Matches(@"(?m)^\s*" + System.Text.RegularExpressions.Regex.Escape(key) + @"\s*=", text);
        foreach (var (name, _) in CostModel.Default.Times())
            Assert.Contains(name, CostModelConfig.Keys);
    }

    [Fact]
    public void AFileOverridesOnlyTheKeysItSets()
    {
        Assert.True(CostModelConfig.TryApply(CostModel.Default, "ptactors.cost {\n  invalidation-ns = 2500\n  translations-in-flight = 8\n}\n", "c.conf", out var m, out string? error), error);
        Assert.Equal(CostModel.Default with { InvalidationNs = 2500, TranslationsInFlight = 8 }, m);

        Assert.True(CostModelConfig.TryApply(CostModel.Default, "ptactors.cost.walk-read-ns = 120.5", "c.conf", out m, out error), error);
        Assert.Equal(120.5, m.WalkReadNs);

        Assert.True(CostModelConfig.TryApply(CostModel.Default, "# nothing\n", "c.conf", out m, out error), error);
        Assert.Equal(CostModel.Default, m);
    }

    [Theory]
    [InlineData("ptactors.cost {\n  invalidation-ns = 10\n  invalidaton-ns = 5\n}\n", "c.conf:3: unknown cost key 'invalidaton-ns'")]
    [InlineData("ptactors.cost {\n  walk-read-ns = fast\n}\n", "c.conf:2: walk-read-ns must be a number, not 'fast'")]
    [InlineData("ptactors.cost {\n  iova-magazine-size = 1.5\n}\n", "c.conf:2: iova-magazine-size must be a whole number, not 1.5")]
    [InlineData("ptactors.cost {\n  iotlb-hit-ns = -1\n}\n", "c.conf: iotlb-hit-ns must be a number of nanoseconds from 0 to 1e9, not -1")]
    [InlineData("ptactors.cost {\n  translations-in-flight = 0\n}\n", "c.conf: translations-in-flight must be from 1 to 4096, not 0")]
    [InlineData("\nptactors.costs {\n  invalidation-ns = 10\n}\n", "c.conf:3: 'ptactors.costs.invalidation-ns' is not a cost key")]
    [InlineData("invalidation-ns = 10\n", "c.conf:1: 'invalidation-ns' is not a cost key")]
    [InlineData("ptactors.cost {\n  invalidation-ns = ${nowhere}\n}\n", "c.conf: not valid HOCON")]
    [InlineData("ptactors.cost = [1,\n", "c.conf:1: 'ptactors.cost' is not a cost key")]
    public void ABadFileIsRefusedNamingTheFileLineAndKey(string text, string expected)
    {
        Assert.False(CostModelConfig.TryApply(CostModel.Default, text, "c.conf", out var m, out string? error));
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
        Assert.Equal(CostModel.Default, m);
    }

    [Fact]
    public void AMissingFileIsNamed()
    {
        string path = Path.Combine(Path.GetTempPath(), "ptactors-no-such-" + Guid.NewGuid().ToString("N") + ".conf");
        Assert.False(CostModelConfig.TryLoad(path, out _, out string? error));
        Assert.StartsWith(path + ": cannot read it", error, StringComparison.Ordinal);
    }
}
