import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Sync over URLSession, the platform's HTTP stack: the system's trust settings (including
/// configuration-profile certificate authorities) and the system proxy apply, which the
/// built-in client (rustls with its own roots) cannot see. Pin the backend's keys with App
/// Transport Security (`NSPinnedDomains` in Info.plist, SPKI SHA-256 in base64): no code needed.
///
/// ```swift
/// let sync = try SyncClient.withHttpClient(settings: settings, http: URLSessionSyncTransport())
/// ```
public final class URLSessionSyncTransport: HttpClient, @unchecked Sendable {
    private let session: URLSession

    /// A transport over `session` (default: an ephemeral session that keeps no cookies or cache
    /// and follows no redirect).
    public init(session: URLSession? = nil) {
        self.session = session ?? URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
    }

    /// Called on a library thread set aside for it: waiting here blocks no task.
    public func send(request: HttpRequest) throws -> HttpResponse {
        guard let url = URL(string: request.url) else { throw HttpError.Failed(reason: "not a URL") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        urlRequest.timeoutInterval = Double(request.timeoutMs) / 1000
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        urlRequest.httpBody = request.body
        let outcome = Outcome()
        session.dataTask(with: urlRequest) { data, response, error in
            if let error {
                // The error's kind, never the URL (it holds ids and cursors).
                outcome.finish(.failure(HttpError.Failed(reason: "\(type(of: error)) \((error as NSError).code)")))
            } else if let response {
                outcome.finish(.success((data ?? Data(), response)))
            } else {
                outcome.finish(.failure(HttpError.Failed(reason: "no response")))
            }
        }.resume()
        let (data, response) = try outcome.wait().get()
        guard let http = response as? HTTPURLResponse else { throw HttpError.Failed(reason: "not an HTTP response") }
        if Int64(data.count) > request.maxBodyBytes { throw HttpError.TooLarge }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name] = value }
        }
        return HttpResponse(status: Int32(http.statusCode), headers: headers, body: data)
    }
}

/// One exchange's result, handed from URLSession's queue to the waiting library thread.
private final class Outcome: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<(Data, URLResponse), Error> = .failure(HttpError.Failed(reason: "no answer"))

    func finish(_ value: Result<(Data, URLResponse), Error>) {
        result = value
        done.signal()
    }

    func wait() -> Result<(Data, URLResponse), Error> {
        done.wait()
        return result
    }
}

/// Refuses redirects: the backend never sends one, and a redirect must not carry the device's
/// token elsewhere.
private final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
