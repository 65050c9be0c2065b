//! Validation that reports every problem at once: [`FieldCheck`] collects field problems, and
//! [`Required`] values come out of it together or not at all (parse, don't validate).

use super::{AppError, FieldErrors};

/// Collects field problems while a request is validated, so the client hears about all of them at once.
#[derive(Debug, Default)]
pub struct FieldCheck {
    fields: FieldErrors,
}

impl FieldCheck {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, problem: impl Into<String>) {
        self.fields
            .entry(field.to_string())
            .or_insert_with(|| problem.into());
    }

    /// A field the request must carry. Checks may look at it ([`Required::get`]) or parse it
    /// ([`Required::parse`]); [`FieldCheck::finish_with`] hands back the values.
    pub fn required<T>(&self, field: &'static str, value: Option<T>) -> Required<T> {
        Required { field, value }
    }

    /// Parses the field with `parse` if present, recording its problem if refused. `None` when
    /// absent or refused.
    pub fn parse<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        match value.map(parse)? {
            Ok(parsed) => Some(parsed),
            Err(problem) => {
                self.fail(field, problem);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.fields))
        }
    }

    /// The required values, once every one is present and no check failed; otherwise every
    /// problem at once, an absent field's being "is required". Total: there is no "validated but
    /// missing" case to handle after it ("parse, don't validate").
    pub fn finish_with<R: RequiredFields>(mut self, required: R) -> Result<R::Values, AppError> {
        match required.take() {
            Ok(values) => self.finish().map(|()| values),
            Err(Missing(missing)) => {
                for field in missing {
                    self.fail(field, "is required");
                }
                Err(AppError::validation(self.fields))
            }
        }
    }
}

/// A required field of a request: its value, or nothing if it was absent or refused by a check
/// (which recorded why).
#[must_use = "hand it to FieldCheck::finish_with"]
#[derive(Debug)]
pub struct Required<T> {
    field: &'static str,
    value: Option<T>,
}

impl<T> Required<T> {
    /// The value, for a check to look at.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The value parsed by `parse`; a refusal is recorded in `check` under this field.
    pub fn parse<U>(
        self,
        check: &mut FieldCheck,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Required<U> {
        let field = self.field;
        Required {
            field,
            value: check.parse(field, self.value, parse),
        }
    }

    /// The value passed through `f` (a check that records its own problems and returns the
    /// value to keep, such as a trimmed name).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Required<U> {
        Required {
            field: self.field,
            value: self.value.map(f),
        }
    }

    fn take(self) -> Result<T, Missing> {
        self.value.ok_or(Missing(vec![self.field]))
    }
}

/// The names of required fields without a value; never empty.
#[derive(Debug)]
pub struct Missing(Vec<&'static str>);

/// Both values, or every missing field of either.
fn both<A, B>(a: Result<A, Missing>, b: Result<B, Missing>) -> Result<(A, B), Missing> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Missing(mut a)), Err(Missing(b))) => {
            a.extend(b);
            Err(Missing(a))
        }
        (Err(missing), Ok(_)) | (Ok(_), Err(missing)) => Err(missing),
    }
}

/// One [`Required`] field or a tuple of them, taken out together.
pub trait RequiredFields {
    type Values;
    fn take(self) -> Result<Self::Values, Missing>;
}

impl<A> RequiredFields for Required<A> {
    type Values = A;
    fn take(self) -> Result<A, Missing> {
        Required::take(self)
    }
}

impl<A, B> RequiredFields for (Required<A>, Required<B>) {
    type Values = (A, B);
    fn take(self) -> Result<(A, B), Missing> {
        both(self.0.take(), self.1.take())
    }
}

impl<A, B, C> RequiredFields for (Required<A>, Required<B>, Required<C>) {
    type Values = (A, B, C);
    fn take(self) -> Result<(A, B, C), Missing> {
        let ((a, b), c) = both(both(self.0.take(), self.1.take()), self.2.take())?;
        Ok((a, b, c))
    }
}

impl<A, B, C, D> RequiredFields for (Required<A>, Required<B>, Required<C>, Required<D>) {
    type Values = (A, B, C, D);
    fn take(self) -> Result<(A, B, C, D), Missing> {
        let ((a, b), (c, d)) = both(
            both(self.0.take(), self.1.take()),
            both(self.2.take(), self.3.take()),
        )?;
        Ok((a, b, c, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_come_out_together_or_every_problem_is_reported_at_once() {
        let check = FieldCheck::new();
        let a = check.required("a", Some(1));
        let b = check.required("b", Some("x"));
        assert_eq!(check.finish_with((a, b)).unwrap(), (1, "x"));

        let mut check = FieldCheck::new();
        let a = check.required("a", None::<i64>);
        let b = check
            .required("b", Some("x"))
            .parse(&mut check, |_| Err::<i64, _>("must be a number".into()));
        let c = check.required("c", Some(3));
        let d = check.required("d", None::<bool>);
        check.fail("e", "is too long");
        let AppError::Validation { fields, .. } = check.finish_with((a, b, c, d)).unwrap_err()
        else {
            panic!("expected a validation error");
        };
        assert_eq!(fields["a"], "is required");
        assert_eq!(
            fields["b"], "must be a number",
            "a refusal is not overwritten"
        );
        assert_eq!(fields["d"], "is required");
        assert_eq!(fields["e"], "is too long");
        assert!(!fields.contains_key("c"));

        // Every value present, but another check failed: still refused.
        let mut check = FieldCheck::new();
        let a = check.required("a", Some(1));
        check.fail("other", "is wrong");
        assert!(check.finish_with(a).is_err());
    }
}
