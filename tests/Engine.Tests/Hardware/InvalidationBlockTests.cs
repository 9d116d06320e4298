using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

public class InvalidationBlockTests
{
    [Theory]
    [InlineData(InvalidationFlavor.Amd)]
    [InlineData(InvalidationFlavor.Vtd)]
    public void SmallestAlignedPowerOfTwoBlockContainsTheRange(InvalidationFlavor flavor)
    {
        // 8 KiB at 0x1000 crosses a 16 KiB boundary only at 0x4000: the block is 0x0-0x3fff.
        Assert.Equal(new InvalidationCommand(InvalidationKind.PageSelective, 3, 0x0, 0x3fff),
            InvalidationBlocks.ForRange(flavor, 3, 0x1000, 0x2fff));
        // One page stays one page, whatever offset the range has inside it.
        Assert.Equal(new InvalidationCommand(InvalidationKind.PageSelective, 3, 0x5000, 0x5fff),
            InvalidationBlocks.ForRange(flavor, 3, 0x5010, 0x5fff));
        // An aligned 2 MiB range is exactly itself.
        Assert.Equal(new InvalidationCommand(InvalidationKind.PageSelective, 3, 0x200000, 0x3fffff),
            InvalidationBlocks.ForRange(flavor, 3, 0x200000, 0x3fffff));
        // 0x2000-0x4fff needs the 32 KiB block at 0.
        Assert.Equal(new InvalidationCommand(InvalidationKind.PageSelective, 3, 0x0, 0x7fff),
            InvalidationBlocks.ForRange(flavor, 3, 0x2000, 0x4fff));
    }

    [Fact]
    public void AmdInvalidatesEverythingWhenBit51OrAboveDiffers()
    {
        var cmd = InvalidationBlocks.ForRange(InvalidationFlavor.Amd, 1, 0x000f_ffff_ffff_f000, 0x0010_0000_0000_0fff);
        Assert.Equal(InvalidationKind.Domain, cmd.Kind);
        Assert.Equal(InvalidationKind.PageSelective,
            InvalidationBlocks.ForRange(InvalidationFlavor.Amd, 1, 0x0007_ffff_ffff_f000, 0x0008_0000_0000_0fff).Kind);
    }

    [Fact]
    public void VtdFallsBackToDomainSelectiveAboveTheMaximumMask()
    {
        // 4 MiB aligned: mask 10; with a maximum of 9 it becomes domain-selective.
        Assert.Equal(InvalidationKind.PageSelective,
            InvalidationBlocks.ForRange(InvalidationFlavor.Vtd, 1, 0x400000, 0x7fffff, vtdMaxAddressMask: 10).Kind);
        Assert.Equal(InvalidationKind.Domain,
            InvalidationBlocks.ForRange(InvalidationFlavor.Vtd, 1, 0x400000, 0x7fffff, vtdMaxAddressMask: 9).Kind);
    }

    [Fact]
    public void TheOldAmdMaskIsOneBitShortForUnalignedStarts()
    {
        var broken = InvalidationBlocks.ForRange(InvalidationFlavor.AmdOneBitShort, 1, 0x2000, 0x4fff);
        Assert.Equal(new InvalidationCommand(InvalidationKind.PageSelective, 1, 0x2000, 0x3fff), broken);
        // Aligned ranges are unaffected.
        Assert.Equal(InvalidationBlocks.ForRange(InvalidationFlavor.Amd, 1, 0x0, 0x1fff),
            InvalidationBlocks.ForRange(InvalidationFlavor.AmdOneBitShort, 1, 0x0, 0x1fff));
    }
}
