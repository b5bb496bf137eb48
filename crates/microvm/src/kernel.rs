//! Loading a guest image into guest memory: Linux (ELF vmlinux or bzImage), the stub ELF, an
//! initramfs — and the boot information the kernel reads first.
//!
//! **Boot protocols.** A kernel needs to know where RAM is, where its command line and
//! initramfs are. Two ways exist for a VMM that skips firmware:
//! * **Linux 64-bit boot protocol**: the VMM fills a "zero page" (`struct boot_params`, with the
//!   setup header copied from a bzImage, an e820 memory map, the command line and initrd
//!   addresses) and jumps to the kernel in long mode with RSI pointing at it. A bzImage's
//!   64-bit entry is 0x200 bytes past its protected-mode code; an ELF vmlinux's entry is
//!   `e_entry`.
//! * **PVH** (from Xen, used by QEMU and Firecracker): an ELF vmlinux that carries a
//!   `XEN_ELFNOTE_PHYS32_ENTRY` note is entered in 32-bit protected mode with EBX pointing at
//!   an `hvm_start_info` (memory map, command line, modules). The kernel does the rest.
//!
//! **e820** is the BIOS's name for the memory map: ranges of usable RAM and reserved holes.

use crate::error::{Result, VmError};
use crate::layout;
use crate::long_mode::StartMode;
use linux_loader::loader::bootparam::{boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{BzImage, Elf, KernelLoader, KernelLoaderResult};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;
/// Without a setup header to say otherwise, keep the initrd below 2 GiB (Linux's default).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x7fff_ffff;

/// What kind of image a file holds, decided from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// ELF executable (vmlinux, or the stub guest).
    Elf,
    /// Linux bzImage ("HdrS" at 0x202).
    BzImage,
}

/// Where a loaded kernel starts and how it wants to be entered.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    /// The image format.
    pub format: ImageFormat,
    /// First instruction.
    pub entry: u64,
    /// CPU mode at `entry`.
    pub mode: StartMode,
    /// End of the loaded image (initrd goes above it).
    pub end: u64,
    /// The bzImage setup header, to copy into the zero page.
    pub setup_header: Option<setup_header>,
}

/// Reads the magic bytes and says which format `image` is.
pub fn detect_format<R: Read + Seek>(image: &mut R) -> std::result::Result<ImageFormat, String> {
    let mut head = [0u8; 0x206];
    image.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut filled = 0;
    while filled < head.len() {
        match image.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    if filled >= 4 && head[..4] == *b"\x7fELF" {
        return Ok(ImageFormat::Elf);
    }
    if filled >= 0x206
        && u32::from_le_bytes([head[0x202], head[0x203], head[0x204], head[0x205]])
            == KERNEL_HDR_MAGIC
    {
        return Ok(ImageFormat::BzImage);
    }
    if filled == 0 {
        return Err("the file is empty".into());
    }
    Err("no ELF magic and no bzImage \"HdrS\" header".into())
}

/// Loads a Linux kernel image (any supported format) into guest memory.
pub fn load_linux(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel> {
    let mut file = File::open(path).map_err(|source| VmError::ReadFile {
        what: "kernel",
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: String| VmError::BadKernel {
        path: path.to_path_buf(),
        detail,
    };
    let format = detect_format(&mut file).map_err(bad)?;
    load_image(mem, &mut file, format).map_err(bad)
}

/// Loads an already-opened image; errors are the loader's words.
pub fn load_image<F>(
    mem: &GuestMemoryMmap,
    image: &mut F,
    format: ImageFormat,
) -> std::result::Result<LoadedKernel, String>
where
    F: Read + vm_memory::ReadVolatile + Seek,
{
    let himem = Some(GuestAddress(layout::HIMEM_START));
    match format {
        ImageFormat::Elf => {
            let result: KernelLoaderResult =
                Elf::load(mem, None, image, himem).map_err(|e| e.to_string())?;
            let (entry, mode) = match result.pvh_boot_cap {
                PvhBootCapability::PvhEntryPresent(addr) => (addr.0, StartMode::Pvh32),
                _ => (result.kernel_load.0, StartMode::Long64Kernel),
            };
            Ok(LoadedKernel {
                format,
                entry,
                mode,
                end: result.kernel_end,
                setup_header: None,
            })
        }
        ImageFormat::BzImage => {
            let result = BzImage::load(mem, None, image, himem).map_err(|e| e.to_string())?;
            Ok(LoadedKernel {
                format,
                // The 64-bit entry point sits 0x200 bytes into the protected-mode kernel.
                entry: result.kernel_load.0 + 0x200,
                mode: StartMode::Long64Kernel,
                end: result.kernel_end,
                setup_header: result.setup_header,
            })
        }
    }
}

/// RAM ranges of a guest with `memory_bytes`: below the 32-bit MMIO gap, then above 4 GiB.
pub fn ram_ranges(memory_bytes: u64) -> Vec<(GuestAddress, usize)> {
    let low = memory_bytes.min(layout::MMIO_GAP_START);
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if memory_bytes > low {
        ranges.push((
            GuestAddress(layout::MMIO_GAP_END),
            (memory_bytes - low) as usize,
        ));
    }
    ranges
}

/// The e820 map: (start, size, type).
pub fn e820_map(memory_bytes: u64) -> Vec<(u64, u64, u32)> {
    let low_end = memory_bytes.min(layout::MMIO_GAP_START);
    let mut map = vec![
        (0, layout::EBDA_START, E820_RAM),
        (
            layout::EBDA_START,
            layout::HIMEM_START - layout::EBDA_START,
            E820_RESERVED,
        ),
        (layout::HIMEM_START, low_end - layout::HIMEM_START, E820_RAM),
    ];
    if memory_bytes > low_end {
        map.push((layout::MMIO_GAP_END, memory_bytes - low_end, E820_RAM));
    }
    map
}

/// Copies the initramfs into the highest page-aligned spot below the kernel's limit.
/// Returns (address, size).
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    memory_bytes: u64,
    kernel: &LoadedKernel,
) -> Result<(u64, u64)> {
    let read_err = |source| VmError::ReadFile {
        what: "initrd",
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    let limit = kernel
        .setup_header
        .map(|h| u64::from(h.initrd_addr_max))
        .filter(|&max| max != 0)
        .unwrap_or(DEFAULT_INITRD_ADDR_MAX)
        .min(memory_bytes.min(layout::MMIO_GAP_START) - 1);
    let too_big = || VmError::InitrdTooBig {
        path: path.to_path_buf(),
        size_bytes: size,
    };
    let start = (limit + 1).checked_sub(size).ok_or_else(too_big)? & !0xfff;
    if start < kernel.end.max(layout::HIMEM_START) {
        return Err(too_big());
    }
    mem.read_exact_volatile_from(GuestAddress(start), &mut file, size as usize)
        .map_err(|e| read_err(std::io::Error::other(e.to_string())))?;
    Ok((start, size))
}

/// Writes the command line (NUL-terminated).
pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(cmdline.len() + 1);
    bytes.extend_from_slice(cmdline.as_bytes());
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(layout::CMDLINE_START))
        .map_err(|_| VmError::GuestWrite {
            what: "command line",
        })
}

/// Fills and writes the zero page for the 64-bit boot protocol.
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    kernel: &LoadedKernel,
    cmdline_bytes: usize,
    initrd: Option<(u64, u64)>,
    memory_bytes: u64,
) -> Result<()> {
    let mut params = boot_params::default();
    if let Some(header) = kernel.setup_header {
        params.hdr = header;
    } else {
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_bytes as u32;
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let map = e820_map(memory_bytes);
    for (slot, &(addr, size, type_)) in params.e820_table.iter_mut().zip(&map) {
        slot.addr = addr;
        slot.size = size;
        slot.r#type = type_;
    }
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE_START))
        .map_err(|_| VmError::GuestWrite { what: "zero page" })
}

/// Fills and writes the PVH start info, its memory map and module list.
pub fn write_pvh_start_info(
    mem: &GuestMemoryMmap,
    initrd: Option<(u64, u64)>,
    memory_bytes: u64,
) -> Result<()> {
    let err = |_| VmError::GuestWrite {
        what: "PVH start info",
    };
    let map = e820_map(memory_bytes);
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: layout::CMDLINE_START,
        memmap_paddr: layout::PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    for (i, &(addr, size, type_)) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr,
            size,
            type_,
            reserved: 0,
        };
        let at =
            layout::PVH_MEMMAP_START + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at)).map_err(err)?;
    }
    if let Some((paddr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        };
        mem.write_obj(module, GuestAddress(layout::PVH_MODLIST_START))
            .map_err(err)?;
        info.nr_modules = 1;
        info.modlist_paddr = layout::PVH_MODLIST_START;
    }
    mem.write_obj(info, GuestAddress(layout::PVH_INFO_START))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_covers_memory_and_skips_the_gap() {
        let map = e820_map(256 << 20);
        let ram: u64 = map.iter().filter(|e| e.2 == E820_RAM).map(|e| e.1).sum();
        assert_eq!(
            ram,
            (256 << 20) - (layout::HIMEM_START - layout::EBDA_START)
        );
        let big = e820_map(4 << 30);
        assert_eq!(
            big.last().unwrap(),
            &(layout::MMIO_GAP_END, 1 << 30, E820_RAM)
        );
        assert_eq!(ram_ranges(4 << 30).len(), 2);
    }

    #[test]
    fn formats_are_told_apart() {
        use std::io::Cursor;
        assert_eq!(
            detect_format(&mut Cursor::new(b"\x7fELF\x02\x01".to_vec())),
            Ok(ImageFormat::Elf)
        );
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(
            detect_format(&mut Cursor::new(bz)),
            Ok(ImageFormat::BzImage)
        );
        assert!(detect_format(&mut Cursor::new(Vec::new()))
            .unwrap_err()
            .contains("empty"));
        assert!(detect_format(&mut Cursor::new(b"MZ garbage".to_vec())).is_err());
    }
}
