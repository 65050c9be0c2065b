//! Clients that hold connections open: a body that trickles in is refused after a while without
//! ever taking a place in its function's cap, and a declared length past the limit is refused
//! before a byte of it is read, as API Gateway (which receives every body before any function
//! runs) would have it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The local host on a socket with `cap` requests in flight per function and a short body timeout.
async fn host_on_a_socket(cap: usize, body_timeout: Duration) -> std::net::SocketAddr {
    let (address, _server) = api_tests::over_http::local_host_on_a_socket(|host| {
        host.with_max_in_flight(cap).with_body_timeout(body_timeout)
    })
    .await;
    address
}

/// The status code of the answer read off `stream` (within `wait`).
async fn status_of(stream: &mut TcpStream, wait: Duration) -> u16 {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(wait, read)
        .await
        .expect("an answer in time");
    let line = String::from_utf8_lossy(&answer);
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn send(address: std::net::SocketAddr, head_and_body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head_and_body.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn bodies_that_trickle_in_hold_no_place_in_the_cap_and_are_cut_off() {
    let address = host_on_a_socket(4, Duration::from_millis(800)).await;
    // Twenty connections each send a 1,000-byte order's headers and one byte of it.
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(
            send(
                address,
                "POST /api/members/orders/ HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Members are still served (401 without a token: answered, not 503 overloaded).
    for _ in 0..3 {
        let mut call = send(
            address,
            "GET /api/members/points/ HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&mut call, Duration::from_secs(5)).await, 401);
    }
    // The trickling ones are refused once the wait is over.
    for stream in &mut slow {
        assert_eq!(status_of(stream, Duration::from_secs(5)).await, 408);
    }
}

#[tokio::test]
async fn a_declared_length_past_the_limit_is_refused_before_the_body_is_read() {
    let address = host_on_a_socket(4, Duration::from_secs(30)).await;
    // Ten megabytes announced and none sent: the answer comes at once, not after a wait for them.
    let mut stream = send(
        address,
        "POST /api/members/orders/ HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&mut stream, Duration::from_secs(5)).await, 413);
}
