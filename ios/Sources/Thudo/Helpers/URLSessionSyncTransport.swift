import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Sync over URLSession, the platform's HTTP stack: the system's trust settings (including
/// configuration-profile certificate authorities) and the system proxy apply, which the
/// built-in client (rustls with its own roots) cannot see. Pin the backend's keys with App
/// Transport Security (`NSPinnedDomains` in Info.plist, SPKI SHA-256 in base64): no code needed.
/// The transport keeps its own session: no cookies, no cache, no redirects; a body longer than
/// the limit is refused as it arrives, and an exchange past its time limit is cancelled.
///
/// ```swift
/// let sync = try SyncClient.withHttpClient(settings: settings, http: URLSessionSyncTransport())
/// ```
public final class URLSessionSyncTransport: HttpClient, @unchecked Sendable {
    private let exchanges = Exchanges()
    private let session: URLSession

    /// A transport with its own ephemeral session.
    public init() {
        session = URLSession(configuration: .ephemeral, delegate: exchanges, delegateQueue: nil)
    }

    deinit {
        session.finishTasksAndInvalidate()
    }

    /// Called on a library thread set aside for it: waiting here blocks no task.
    public func send(request: HttpRequest) throws -> HttpResponse {
        guard let url = URL(string: request.url) else { throw HttpError.Failed(reason: "not a URL") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        let seconds = Double(request.timeoutMs) / 1000
        urlRequest.timeoutInterval = seconds
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        urlRequest.httpBody = request.body
        let task = session.dataTask(with: urlRequest)
        let exchange = exchanges.start(task, maxBody: request.maxBodyBytes)
        task.resume()
        // `timeoutInterval` is an idle limit: the whole exchange gets `timeoutMs`.
        guard exchange.done.wait(timeout: .now() + seconds) == .success else {
            task.cancel()
            exchanges.end(task)
            throw HttpError.Failed(reason: "timed out")
        }
        exchanges.end(task)
        return try exchange.result.get()
    }
}

/// One exchange in flight: the body so far, and its outcome once complete.
private final class Exchange: @unchecked Sendable {
    let maxBody: Int64
    let done = DispatchSemaphore(value: 0)
    var body = Data()
    var response: HTTPURLResponse?
    var tooLarge = false
    var result: Result<HttpResponse, Error> = .failure(HttpError.Failed(reason: "no answer"))
    init(maxBody: Int64) { self.maxBody = maxBody }
}

/// The session's delegate: collects each task's body within its limit, and refuses redirects
/// (the backend sends none, and a redirect must not carry the device's token elsewhere).
private final class Exchanges: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let lock = NSLock()
    private var byTask: [Int: Exchange] = [:]

    func start(_ task: URLSessionTask, maxBody: Int64) -> Exchange {
        let exchange = Exchange(maxBody: maxBody)
        lock.lock(); byTask[task.taskIdentifier] = exchange; lock.unlock()
        return exchange
    }

    func end(_ task: URLSessionTask) {
        lock.lock(); byTask[task.taskIdentifier] = nil; lock.unlock()
    }

    private func exchange(_ task: URLSessionTask) -> Exchange? {
        lock.lock(); defer { lock.unlock() }
        return byTask[task.taskIdentifier]
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        guard let exchange = exchange(dataTask) else { return completionHandler(.cancel) }
        exchange.response = response as? HTTPURLResponse
        if response.expectedContentLength > exchange.maxBody {
            exchange.tooLarge = true
            return completionHandler(.cancel)
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let exchange = exchange(dataTask) else { return }
        if Int64(exchange.body.count + data.count) > exchange.maxBody {
            exchange.tooLarge = true
            dataTask.cancel()
            return
        }
        exchange.body.append(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        guard let exchange = exchange(task) else { return }
        if exchange.tooLarge {
            exchange.result = .failure(HttpError.TooLarge)
        } else if let error {
            // The error's kind, never the URL (it holds ids and cursors).
            exchange.result = .failure(HttpError.Failed(reason: "\(type(of: error)) \((error as NSError).code)"))
        } else if let http = exchange.response {
            var headers: [String: String] = [:]
            for (name, value) in http.allHeaderFields {
                if let name = name as? String, let value = value as? String { headers[name] = value }
            }
            exchange.result = .success(HttpResponse(status: Int32(http.statusCode), headers: headers, body: exchange.body))
        } else {
            exchange.result = .failure(HttpError.Failed(reason: "not an HTTP response"))
        }
        exchange.done.signal()
    }
}
