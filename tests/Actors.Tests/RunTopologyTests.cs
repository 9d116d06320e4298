using Xunit;

namespace PtActors.Actors.Tests;

public class RunTopologyTests
{
    [Fact]
    public void DomainDIsOnUnitDModIommusAndDevicesAreSpreadRoundRobin()
    {
        var t = new RunTopology(new SimulationSettings { Iommus = 3, Domains = 7, Devices = 17 });

        Assert.Equal(["iommu0", "iommu1", "iommu2"], t.Lanes.Select(static l => l.UnitName));
        Assert.Equal([0, 1, 2], t.Lanes.Select(static l => l.Index));
        Assert.Equal([0, 3, 6], t.Lanes[0].Domains.Select(static d => d.Index));
        Assert.Equal([1, 4], t.Lanes[1].Domains.Select(static d => d.Index));
        Assert.Equal([2, 5], t.Lanes[2].Domains.Select(static d => d.Index));

        var dom3 = t.Lanes[0].Domains[1];
        Assert.Equal("dom0003", dom3.Name);
        Assert.Equal(0, dom3.Lane);
        Assert.Equal([3, 10], dom3.Devices);                  // 3, 3 + 7 (17 devices over 7 domains)
        Assert.Equal([0, 7, 14], t.Lanes[0].Domains[0].Devices);
        Assert.Equal("host0003", dom3.HostName);
        Assert.Equal(3, dom3.HostIndex);

        // Every device on exactly one domain; hosts numbered in domain order.
        Assert.Equal(Enumerable.Range(0, 17), t.Domains.SelectMany(static d => d.Devices).Order());
        Assert.Equal(Enumerable.Range(0, 7), t.Domains.Select(static d => d.HostIndex));
        Assert.Equal(t.Domains.Select(static d => d.Index), t.Domains.Select(static d => d.HostIndex));
        Assert.Equal(7, t.HostCount);
        foreach (var d in t.Domains)
            Assert.Same(d, t.Lanes[d.Lane].Domains.Single(x => x.Index == d.Index));
    }

    [Fact]
    public void MoreUnitsThanDomainsLeavesLanesWithoutDomains()
    {
        var t = new RunTopology(new SimulationSettings { Iommus = 4, Domains = 2, Devices = 2 });
        Assert.Equal(4, t.Lanes.Count);
        Assert.Equal([1, 1, 0, 0], t.Lanes.Select(static l => l.Domains.Count));
        Assert.Equal(2, t.HostCount);
        Assert.Equal([0], t.Lanes[0].Domains[0].Devices);
        Assert.Equal([1], t.Lanes[1].Domains[0].Devices);
    }

    [Fact]
    public void NoDomainsMeansNoHosts()
    {
        var t = new RunTopology(new SimulationSettings { Iommus = 2, Domains = 0, Devices = 0 });
        Assert.Equal(2, t.Lanes.Count);
        Assert.All(t.Lanes, static l => Assert.Empty(l.Domains));
        Assert.Empty(t.Domains);
        Assert.Equal(0, t.HostCount);
    }
}
