//! How far the decrypted logits are from the plaintext model's, and what that means for the
//! argmax: only images whose two largest plaintext logits are closer than twice the largest
//! logit error can be classified differently.

/// The comparison of decrypted logits with the plaintext model's, image by image.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    /// Images compared.
    pub images: usize,
    /// Images whose decrypted argmax equals the plaintext model's.
    pub agree: usize,
    /// The largest difference between a decrypted logit and the plaintext model's.
    pub max_logit_error: f64,
    /// The largest plaintext logit magnitude, the scale `max_logit_error` is read against.
    pub max_logit: f64,
    /// Each image's gap between its two largest plaintext logits.
    margins: Vec<f64>,
}

impl Agreement {
    /// Adds one image: its decrypted and its plaintext logits.
    pub fn add(&mut self, decrypted: &[f32], plain: &[f32]) {
        self.images += 1;
        self.agree += usize::from(hegpu::nn::argmax(decrypted) == hegpu::nn::argmax(plain));
        for (&got, &want) in decrypted.iter().zip(plain) {
            self.max_logit_error = self.max_logit_error.max(f64::from((got - want).abs()));
            self.max_logit = self.max_logit.max(f64::from(want.abs()));
        }
        self.margins.push(top_two_margin(plain));
    }

    /// The share of images that agree (0 with none compared).
    pub fn share(&self) -> f64 {
        self.agree as f64 / self.images.max(1) as f64
    }

    /// Images whose top two plaintext logits are within twice the largest logit error: the
    /// only ones that may disagree.
    pub fn near_ties(&self) -> usize {
        let limit = 2.0 * self.max_logit_error;
        self.margins.iter().filter(|&&m| m <= limit).count()
    }

    /// The line the command line prints below the agreement.
    pub fn error_line(&self) -> String {
        format!(
            "{:.2e} at most (plaintext logits up to {:.2e}; {} near ties)",
            self.max_logit_error,
            self.max_logit,
            self.near_ties()
        )
    }
}

/// The gap between the largest and the second largest of `logits`.
fn top_two_margin(logits: &[f32]) -> f64 {
    let (mut first, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &v in logits {
        let v = f64::from(v);
        if v > first {
            (first, second) = (v, first);
        } else if v > second {
            second = v;
        }
    }
    first - second
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ties_are_the_images_the_error_can_flip() {
        let mut a = Agreement::default();
        // Error 0.1; margins 0.15 (a near tie: within 0.2) and 1.0.
        a.add(&[1.0, 1.1, 0.0], &[1.0, 1.0, 0.0]);
        a.add(&[0.9, 1.05, 0.0], &[0.9, 1.05, 0.0]);
        a.add(&[0.0, 2.0, 1.0], &[0.0, 2.0, 1.0]);
        assert_eq!((a.images, a.agree), (3, 2));
        assert!((a.max_logit_error - 0.1).abs() < 1e-6);
        assert_eq!(a.max_logit, 2.0);
        assert_eq!(a.near_ties(), 2);
        assert!((a.share() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_two_margin(&[3.0, -1.0, 2.5]), 0.5);
    }
}
