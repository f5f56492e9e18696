# Makes tiny.exe: the smallest PE32 console image osslsigncode signs (DOS header, PE
# header, one .text section holding `ret`). Run from this folder: python3 make_tiny_pe.py
import struct
# A minimal PE32 console image: DOS header, PE header, one .text section with `ret`.
FA, SA = 0x200, 0x1000
dos = bytearray(0x40)
dos[0:2] = b'MZ'
struct.pack_into('<I', dos, 0x3c, 0x40)
coff = struct.pack('<4sHHIIIHH', b'PE\0\0', 0x14c, 1, 0, 0, 0, 0xE0, 0x0102)
opt = bytearray(0xE0)
struct.pack_into('<HBBIIIIII', opt, 0, 0x10b, 14, 0, FA, 0, 0, SA, SA, SA)  # magic.. BaseOfData
struct.pack_into('<IIIHHHHHHIIIIHHIIIIII', opt, 28,
    0x400000, SA, FA, 6, 0, 0, 0, 6, 0, 0,
    2 * SA,            # SizeOfImage
    FA,                # SizeOfHeaders
    0,                 # CheckSum
    3, 0,              # Subsystem CUI, DllCharacteristics
    0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
sect = struct.pack('<8sIIIIIIHHI', b'.text', 0x1000, SA, FA, FA, 0, 0, 0, 0, 0x60000020)
hdr = bytes(dos) + coff + bytes(opt) + sect
hdr = hdr + bytes(FA - len(hdr))
text = b'\xc3' + bytes(FA - 1)
open('tiny.exe', 'wb').write(hdr + text)
