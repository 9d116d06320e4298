using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>Malformed IOMMU lines that need a unit to exist first, and the hardware commands' error results.</summary>
public class HardwareCommandTests
{
    [Theory]
    [InlineData("attach dev0 u0 nosuch", "t.pts:3: unknown domain 'nosuch' (no domain line has created it)")]
    [InlineData("iommu u0 policy=lazy", "t.pts:3: IOMMU unit 'u0' already exists")]
    public void UnitLinesAreCheckedAgainstWhatExists(string line, string error)
    {
        var r = ScriptHarness.Run($"domain a x86_64\niommu u0\n{line}\nstats u0\n", "t.pts");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("ok pgsizes=0x40201000\nok\n", r.Stdout);
        Assert.Equal(error + "\n", r.Stderr.Replace("\r\n", "\n"));
    }

    [Fact]
    public void ADomainBelongsToOneUnitAndADeviceMovesBetweenUnits()
    {
        var r = ScriptHarness.Run(
            "domain a x86_64\ndomain b x86_64\niommu u0\niommu u1\nattach d0 u0 a\nattach d1 u1 a\n" +
            "attach d0 u1 b\ndetach d0\ndetach d0\nmap b 0x1000 0x2000 4K\ndma d0 0x1000 r\n", "t.pts");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(
            "ok pgsizes=0x40201000\nok pgsizes=0x40201000\nok\nok\nok\nerror EBUSY\nok\nok\nerror ENODEV\nok\nfault reason=notattached\n",
            r.Stdout);
    }
}
