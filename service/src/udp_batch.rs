//! Batched UDP I/O: many datagrams per system call (`recvmmsg`, `sendmmsg`), through
//! nix's safe wrappers. The relays (TURN's shards, the SFU's workers) read and write
//! thousands of small datagrams a second; a call per datagram was most of their kernel
//! time.
//!
//! Both types keep their buffers from call to call, and a call's I/O slices live on the
//! stack, so the packet path allocates nothing. They hold raw pointers inside (the
//! message headers), so they are made on the thread that uses them.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Most datagrams in one call (a larger batch asked for is cut to this): each call's I/O
/// slices are an array of this size on the stack.
pub const MAX_BATCH: usize = 64;

/// Buffers for reading up to `batch` datagrams in one `recvmmsg` call.
#[derive(Debug)]
pub struct ReceiveBatch {
    buffers: Vec<u8>,
    datagram_size: usize,
    /// Message headers for IPv4 and for IPv6 sockets: the kernel shrinks each header's
    /// address length to the last sender's, which a later IPv6 sender would not fit.
    headers: [MultiHeaders<SockaddrStorage>; 2],
    /// Each datagram's length and sender from the last call.
    found: Vec<(usize, Option<SocketAddr>)>,
}

impl ReceiveBatch {
    /// Room for `batch` datagrams (at most [`MAX_BATCH`]) of at most `datagram_size`
    /// bytes each; longer ones are dropped, not passed on cut.
    pub fn new(batch: usize, datagram_size: usize) -> ReceiveBatch {
        let batch = batch.clamp(1, MAX_BATCH);
        ReceiveBatch {
            buffers: vec![0; batch * datagram_size],
            datagram_size,
            headers: [MultiHeaders::preallocate(batch, None), MultiHeaders::preallocate(batch, None)],
            found: Vec::with_capacity(batch),
        }
    }

    /// How many datagrams one read takes at most: a read that returns fewer found the
    /// socket's queue empty.
    pub fn capacity(&self) -> usize {
        self.buffers.len() / self.datagram_size
    }

    /// Reads what is waiting on `socket` (non-blocking), up to [`Self::capacity`]
    /// datagrams; how many were read. `ipv6`: whether the socket is an IPv6 one.
    pub fn read(&mut self, socket: &impl AsRawFd, ipv6: bool) -> io::Result<usize> {
        self.read_at_most(socket, ipv6, self.capacity())
    }

    /// [`Self::read`] of at most `limit` datagrams (and at most the capacity): a read
    /// that returns fewer than `limit` found the queue empty. For sockets that mostly
    /// hold one datagram at a time, a small limit saves preparing (in the library) and
    /// walking (in the kernel) message headers that stay unused.
    pub fn read_at_most(&mut self, socket: &impl AsRawFd, ipv6: bool, limit: usize) -> io::Result<usize> {
        let count = limit.clamp(1, self.capacity());
        let mut buffers = self.buffers.chunks_mut(self.datagram_size);
        let mut slices: [[IoSliceMut<'_>; 1]; MAX_BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(buffers.next().unwrap_or_default())]);
        let headers = &mut self.headers[usize::from(ipv6)];
        let results = recvmmsg(socket.as_raw_fd(), headers, slices[..count].iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            .map_err(io::Error::from)?;
        self.found.clear();
        self.found.extend(results.map(|message| {
            let whole = !message.flags.contains(MsgFlags::MSG_TRUNC);
            (message.bytes, message.address.and_then(socket_addr).filter(|_| whole))
        }));
        Ok(self.found.len())
    }

    /// The datagrams of the last read, with their senders. A datagram that was cut, or
    /// whose sender cannot be read, is left out.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.found
            .iter()
            .zip(self.buffers.chunks(self.datagram_size))
            .filter_map(|((length, from), buffer)| Some((buffer.get(..*length)?, (*from)?)))
    }
}

fn socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Message headers for sending up to `batch` datagrams in one `sendmmsg` call.
#[derive(Debug)]
pub struct SendBatch {
    headers: MultiHeaders<SockaddrStorage>,
    batch: usize,
    /// The addresses of the call being made, kept for their capacity.
    addresses: Vec<Option<SockaddrStorage>>,
}

impl SendBatch {
    /// Headers for `batch` datagrams a call (at most [`MAX_BATCH`]).
    pub fn new(batch: usize) -> SendBatch {
        let batch = batch.clamp(1, MAX_BATCH);
        SendBatch { headers: MultiHeaders::preallocate(batch, None), batch, addresses: Vec::with_capacity(batch) }
    }

    /// Sends every datagram (`parts` gives each one's destination and bytes), `batch` to a
    /// call, without blocking; how many went. A datagram the kernel refuses (a full
    /// buffer, an unreachable address) is dropped and the rest still go, as UDP may.
    pub fn send<T>(
        &mut self,
        socket: &impl AsRawFd,
        datagrams: &[T],
        parts: impl Fn(&T) -> (SocketAddr, &[u8]),
    ) -> usize {
        let mut start = 0;
        let mut sent_total = 0;
        while start < datagrams.len() {
            let chunk = &datagrams[start..datagrams.len().min(start + self.batch)];
            let mut slices = [[IoSlice::new(&[])]; MAX_BATCH];
            for (slot, datagram) in slices.iter_mut().zip(chunk) {
                *slot = [IoSlice::new(parts(datagram).1)];
            }
            self.addresses.clear();
            self.addresses.extend(chunk.iter().map(|datagram| Some(SockaddrStorage::from(parts(datagram).0))));
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices[..chunk.len()],
                &self.addresses,
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(Iterator::count)
            .unwrap_or(0);
            sent_total += sent;
            // The datagram after those sent failed: it is dropped and the rest still go.
            start += if sent < chunk.len() { sent + 1 } else { sent };
        }
        sent_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_batch_goes_out_in_one_send_and_comes_in_with_its_senders() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..10u8).map(|n| (to, vec![n; 100 + usize::from(n)])).collect();
        let mut send = SendBatch::new(4);
        assert_eq!(send.send(&sender, &datagrams, |(to, data)| (*to, data)), 10, "three calls of 4, 4 and 2");

        let mut receive = ReceiveBatch::new(8, 256);
        assert_eq!(receive.capacity(), 8);
        assert_eq!(receive.read(&receiver, false).unwrap(), 8, "a full batch");
        let first: Vec<(Vec<u8>, SocketAddr)> = receive.datagrams().map(|(d, from)| (d.to_vec(), from)).collect();
        assert_eq!(receive.read(&receiver, false).unwrap(), 2, "fewer: the queue is empty");
        let rest: Vec<(Vec<u8>, SocketAddr)> = receive.datagrams().map(|(d, from)| (d.to_vec(), from)).collect();
        let all: Vec<_> = first.into_iter().chain(rest).collect();
        assert_eq!(all.len(), 10);
        for (n, (data, from)) in all.iter().enumerate() {
            assert_eq!(*from, sender.local_addr().unwrap());
            assert_eq!(*data, vec![n as u8; 100 + n], "in order, whole");
        }
        let empty = receive.read(&receiver, false).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_limited_read_takes_no_more_than_its_limit() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        for n in 0..5u8 {
            sender.send_to(&[n; 10], to).unwrap();
        }
        let mut receive = ReceiveBatch::new(8, 64);
        assert_eq!(receive.read_at_most(&receiver, false, 2).unwrap(), 2);
        let first: Vec<u8> = receive.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(first, vec![0, 1]);
        assert_eq!(receive.read_at_most(&receiver, false, 4).unwrap(), 3, "fewer than the limit: the queue is empty");
        let rest: Vec<u8> = receive.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(rest, vec![2, 3, 4]);
    }

    #[test]
    fn a_batch_larger_than_the_most_a_call_takes_is_cut_to_it() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let count = MAX_BATCH + 6;
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..count).map(|n| (to, vec![n as u8; 8])).collect();
        let mut send = SendBatch::new(1000);
        assert_eq!(send.send(&sender, &datagrams, |(to, data)| (*to, data)), count, "two calls");

        let mut receive = ReceiveBatch::new(1000, 64);
        assert_eq!(receive.capacity(), MAX_BATCH);
        assert_eq!(receive.read(&receiver, false).unwrap(), MAX_BATCH);
        assert_eq!(receive.read_at_most(&receiver, false, 1000).unwrap(), 6, "the rest, in order");
        let last: Vec<u8> = receive.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(last, (MAX_BATCH..count).map(|n| n as u8).collect::<Vec<u8>>());
    }

    #[test]
    fn a_datagram_longer_than_a_buffer_is_dropped_not_cut() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        sender.send_to(&[1; 300], to).unwrap();
        sender.send_to(&[2; 20], to).unwrap();
        let mut receive = ReceiveBatch::new(4, 256);
        assert_eq!(receive.read(&receiver, false).unwrap(), 2);
        let passed: Vec<Vec<u8>> = receive.datagrams().map(|(d, _)| d.to_vec()).collect();
        assert_eq!(passed, vec![vec![2; 20]]);
    }

    #[test]
    fn an_ipv6_sender_is_read_whole_after_an_ipv4_one_on_another_socket() {
        let receiver6 = UdpSocket::bind("[::1]:0").unwrap();
        let receiver4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender6 = UdpSocket::bind("[::1]:0").unwrap();
        sender4.send_to(b"four", receiver4.local_addr().unwrap()).unwrap();
        sender6.send_to(b"six", receiver6.local_addr().unwrap()).unwrap();
        let mut receive = ReceiveBatch::new(2, 64);
        receive.read(&receiver4, false).unwrap();
        assert_eq!(receive.datagrams().next().map(|(_, from)| from), Some(sender4.local_addr().unwrap()));
        receive.read(&receiver6, true).unwrap();
        assert_eq!(receive.datagrams().next().map(|(_, from)| from), Some(sender6.local_addr().unwrap()));
    }
}
